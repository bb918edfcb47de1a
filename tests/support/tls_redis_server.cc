#include "tls_redis_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"
#include "redis_server.h"

namespace rogatory::testing {
namespace {

std::string Run(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen((cmd + " 2>&1").c_str(), "r")) {
    std::array<char, 256> buf;
    while (fgets(buf.data(), buf.size(), p) != nullptr) out += buf.data();
    pclose(p);
  }
  return out;
}

// A CA (`name`.crt/.key) in `dir`.
void MakeCa(const std::string& dir, const std::string& name) {
  Run("cd " + dir + " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " +
      name + ".key && openssl req -x509 -new -key " + name +
      ".key -sha256 -days 30 -subj '/O=Rogatory Test/CN=" + name +
      "' -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign "
      "-out " +
      name + ".crt");
}

// A certificate `name`.crt/.key signed by ca.crt.
void Issue(const std::string& dir, const std::string& name, const std::string& eku,
           const std::string& san) {
  {
    std::ofstream ext(dir + "/" + name + ".ext");
    ext << "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        << "extendedKeyUsage=" << eku << "\n";
    if (!san.empty()) ext << "subjectAltName=" << san << "\n";
  }
  Run("cd " + dir + " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " +
      name + ".key && openssl req -new -key " + name + ".key -subj '/O=Rogatory Test/CN=" + name +
      "' -out " + name + ".csr && openssl x509 -req -in " + name +
      ".csr -CA ca.crt -CAkey ca.key -set_serial 0x$(openssl rand -hex 16) -days 30 -sha256 "
      "-extfile " +
      name + ".ext -out " + name + ".crt");
}

}  // namespace

TlsRedisServer::TlsRedisServer(bool require_client_certificate)
    : require_client_certificate_(require_client_certificate) {
  char tmpl[] = "/tmp/rogatory-tls-redis-XXXXXX";
  dir_ = mkdtemp(tmpl);
  MakeCa(dir_, "ca");
  MakeCa(dir_, "other-ca");
  Issue(dir_, "server", "serverAuth", "DNS:localhost,DNS:redis.test,IP:127.0.0.1");
  Issue(dir_, "client", "clientAuth", "");
  for (const char* f :
       {"ca.crt", "other-ca.crt", "server.crt", "server.key", "client.crt", "client.key"}) {
    EXPECT_TRUE(std::filesystem::exists(File(f))) << "openssl did not make " << f;
  }
  port_ = FreePort();
  {
    std::ofstream conf(File("redis.conf"));
    conf << "port 0\n"
         << "tls-port " << port_ << "\n"
         << "bind 127.0.0.1\n"
         << "dir " << dir_ << "\n"
         << "save \"\"\nappendonly yes\nappendfsync everysec\n"
         << "logfile " << File("redis.log") << "\n"
         << "tls-cert-file " << File("server.crt") << "\n"
         << "tls-key-file " << File("server.key") << "\n"
         << "tls-ca-cert-file " << File("ca.crt") << "\n"
         << "tls-auth-clients " << (require_client_certificate_ ? "yes" : "no") << "\n"
         << "user default off\n"
         << "user " << kUser << " on >" << kPassword << " ~* &* +@all\n";
  }
  Start();
}

TlsRedisServer::~TlsRedisServer() {
  Stop();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

common::RedisUrl TlsRedisServer::Url() const {
  auto url = common::ParseRedisUrl(std::string("rediss://") + kUser + ":" + kPassword +
                                   "@127.0.0.1:" + std::to_string(port_) + "/0");
  EXPECT_TRUE(url.ok()) << url.status();
  url->tls.ca_file = File("ca.crt");
  if (require_client_certificate_) {
    url->tls.cert_file = File("client.crt");
    url->tls.key_file = File("client.key");
  }
  return *url;
}

std::string TlsRedisServer::Cli(const std::string& args) const {
  return Run("redis-cli --tls --cacert " + File("ca.crt") + " --cert " + File("client.crt") +
             " --key " + File("client.key") + " -h 127.0.0.1 -p " + std::to_string(port_) +
             " --user " + kUser + " --pass " + kPassword + " --no-auth-warning " + args);
}

void TlsRedisServer::Start() {
  if (pid_ > 0) return;
  pid_ = fork();
  if (pid_ == 0) {
    const int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, STDIN_FILENO);
    dup2(devnull, STDOUT_FILENO);
    dup2(devnull, STDERR_FILENO);
    execlp("redis-server", "redis-server", File("redis.conf").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream log(File("redis.log"));
      std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
      FAIL() << "TLS redis-server exited at start: " << text;
    }
    if (Cli("PING").find("PONG") != std::string::npos) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL() << "TLS redis-server did not answer PING within 20 s: " << Cli("PING");
}

void TlsRedisServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

}  // namespace rogatory::testing
