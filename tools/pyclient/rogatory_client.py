"""A small Python client library for Rogatory's gRPC services.

Meant for Debian 12's own interpreter, ``/usr/bin/python3``, with the distribution's
``python3-grpcio`` (1.51) and ``python3-protobuf``. It is used by the end-to-end tests
(``tests/e2e``) and by the local demo (``tools/pyclient/demo.py``).

Python stubs are never committed. :func:`stubs` generates them on first use by running
``protoc`` with ``/usr/bin/grpc_python_plugin`` over every ``.proto`` under ``<repo>/protos``
plus the copies of gRPC's health and reflection protos kept in ``tools/pyclient/protos``
(Debian packages neither for Python). Debian's ``python3-grpc-tools`` is not used: it is
gRPC 1.14 and rejects proto3 ``optional``.

The stubs land in ``$ROGATORY_PYSTUBS_DIR`` when that is set, else in
``/tmp/rogatory-pystubs-<uid>-<hash>`` where ``<hash>`` covers the proto files, so a
changed proto yields fresh stubs. Generation holds a file lock, so concurrent test
processes share one cache safely.

Authentication: every Rogatory call carries ``authorization: Bearer <JWT>`` naming the
caller (sub = authority id, state, roles). :class:`Caller` mints one with the development
key set (deploy/dev-auth/keys.json, see :func:`mint_dev_token`) or sends a given token,
and :func:`connect` can attach it to every call on a channel.

Typical use::

    import rogatory_client as rc
    pb = rc.stubs()
    caller = rc.Caller("FR-TJ-PARIS-JI", "FR", ("issuing",))
    with rc.connect("127.0.0.1:50051", caller) as channel:
        intake = pb.intake_grpc.IntakeServiceStub(channel)
        ...
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fcntl
import functools
import base64
import hashlib
import hmac
import importlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import types
from typing import Callable, Iterable, Optional, Sequence, TypeVar, Union

import grpc

# --------------------------------------------------------------------------------------
# Paths and tools
# --------------------------------------------------------------------------------------

#: Root of the repository (this file is <repo>/tools/pyclient/rogatory_client.py).
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Rogatory's own protos (and the googleapis copies under google/rpc).
PROTO_ROOT = REPO_ROOT / "protos"
#: The development key set (HS256 kid "dev"): its secret is public, development and tests
#: only (services refuse HS256 keys with env=production).
DEV_KEY_FILE = REPO_ROOT / "deploy" / "dev-auth" / "keys.json"
#: gRPC's health and reflection protos, which Debian ships for no Python package.
EXTRA_PROTO_ROOT = pathlib.Path(__file__).resolve().parent / "protos"
#: The gRPC Python code generator from Debian's protobuf-compiler-grpc.
GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin"
#: protoc from Debian's protobuf-compiler (it finds google/protobuf/*.proto itself).
PROTOC = shutil.which("protoc") or "/usr/bin/protoc"

#: Full service names, as health checks and reflection know them.
INTAKE_SERVICE = "rogatory.intake.v1.IntakeService"
ROUTING_SERVICE = "rogatory.routing.v1.TranslationRoutingService"
DEADLINE_SERVICE = "rogatory.deadlines.v1.DeadlineService"
NOTIFICATION_SERVICE = "rogatory.notification.v1.NotificationService"
HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICE = "grpc.reflection.v1alpha.ServerReflection"

#: Trailing metadata key under which gRPC carries a serialized google.rpc.Status.
STATUS_DETAILS_KEY = "grpc-status-details-bin"
_BAD_REQUEST_TYPE = "google.rpc.BadRequest"

# Generated modules, by the short name used on the namespace returned by stubs().
_MODULES = {
    "types": "rogatory.common.v1.types_pb2",
    "events": "rogatory.common.v1.events_pb2",
    "intake": "rogatory.intake.v1.intake_pb2",
    "intake_grpc": "rogatory.intake.v1.intake_pb2_grpc",
    "routing": "rogatory.routing.v1.routing_pb2",
    "routing_grpc": "rogatory.routing.v1.routing_pb2_grpc",
    "deadlines": "rogatory.deadlines.v1.deadlines_pb2",
    "deadlines_grpc": "rogatory.deadlines.v1.deadlines_pb2_grpc",
    "notification": "rogatory.notification.v1.notification_pb2",
    "notification_grpc": "rogatory.notification.v1.notification_pb2_grpc",
    "test_clock": "rogatory.admin.v1.test_clock_pb2",
    "test_clock_grpc": "rogatory.admin.v1.test_clock_pb2_grpc",
    "audit": "rogatory.admin.v1.audit_pb2",
    "audit_grpc": "rogatory.admin.v1.audit_pb2_grpc",
    "status": "google.rpc.status_pb2",
    "error_details": "google.rpc.error_details_pb2",
    "health": "grpc.health.v1.health_pb2",
    "health_grpc": "grpc.health.v1.health_pb2_grpc",
    "reflection": "grpc.reflection.v1alpha.reflection_pb2",
    "reflection_grpc": "grpc.reflection.v1alpha.reflection_pb2_grpc",
}


class StubGenerationError(RuntimeError):
    """protoc failed, or a tool it needs is missing."""


# --------------------------------------------------------------------------------------
# Stub generation
# --------------------------------------------------------------------------------------


def _proto_files() -> list[tuple[pathlib.Path, pathlib.Path]]:
    """Every proto to compile, as (include root, path relative to it), in a stable order."""
    files = []
    for root in (PROTO_ROOT, EXTRA_PROTO_ROOT):
        for path in sorted(root.rglob("*.proto")):
            files.append((root, path.relative_to(root)))
    if not files:
        raise StubGenerationError(f"no .proto files under {PROTO_ROOT}")
    return files


def _proto_hash(files: Sequence[tuple[pathlib.Path, pathlib.Path]]) -> str:
    """A digest of the proto files' names and contents and of the generator binaries."""
    digest = hashlib.sha256()
    for root, rel in files:
        digest.update(str(rel).encode() + b"\0")
        digest.update((root / rel).read_bytes() + b"\0")
    for tool in (PROTOC, GRPC_PYTHON_PLUGIN):
        with contextlib.suppress(OSError):
            stat = os.stat(tool)
            digest.update(f"{tool}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _default_stubs_dir(proto_hash: str) -> pathlib.Path:
    return pathlib.Path(tempfile.gettempdir()) / f"rogatory-pystubs-{os.getuid()}-{proto_hash[:16]}"


def _check_private_dir(path: pathlib.Path) -> None:
    """Refuses a shared /tmp cache that another user created (it could hold any code)."""
    stat = path.stat()
    if stat.st_uid != os.getuid() or stat.st_mode & 0o022:
        raise StubGenerationError(
            f"{path} belongs to another user or is group/world-writable; remove it or set "
            "ROGATORY_PYSTUBS_DIR")


def generate_stubs(out_dir: Union[str, os.PathLike, None] = None) -> pathlib.Path:
    """Generates the Python stubs unless ``out_dir`` already holds current ones.

    Args:
      out_dir: Where to put them. Defaults to ``$ROGATORY_PYSTUBS_DIR``, else a directory
        under the system temp dir keyed by a hash of the protos.

    Returns:
      The directory holding the stubs (to be put on ``sys.path``).

    Raises:
      StubGenerationError: protoc or the plugin is missing, or protoc failed.
    """
    files = _proto_files()
    proto_hash = _proto_hash(files)
    explicit = out_dir or os.environ.get("ROGATORY_PYSTUBS_DIR")
    target = pathlib.Path(explicit) if explicit else _default_stubs_dir(proto_hash)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not explicit:
        _check_private_dir(target)
    stamp = target / ".rogatory-proto-hash"

    with open(target / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # Released when the file closes.
        if stamp.exists() and stamp.read_text().strip() == proto_hash:
            return target
        for tool in (PROTOC, GRPC_PYTHON_PLUGIN):
            if not os.access(tool, os.X_OK):
                raise StubGenerationError(
                    f"{tool} not found: install protobuf-compiler and protobuf-compiler-grpc")
        # Stale stubs from an older proto set could shadow removed files: start afresh,
        # removing only the package trees protoc writes (the directory may be shared).
        stamp.unlink(missing_ok=True)
        for top in sorted({rel.parts[0] for _, rel in files}):
            shutil.rmtree(target / top, ignore_errors=True)
        command = [
            PROTOC,
            f"-I{PROTO_ROOT}",
            f"-I{EXTRA_PROTO_ROOT}",
            f"--python_out={target}",
            f"--grpc_python_out={target}",
            f"--plugin=protoc-gen-grpc_python={GRPC_PYTHON_PLUGIN}",
            *[str(rel) for _, rel in files],
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StubGenerationError(
                f"protoc failed ({result.returncode}):\n{result.stderr.strip()}")
        stamp.write_text(proto_hash + "\n")
    return target


_bundled_stubs_dir: Optional[str] = None


def use_bundled_stubs(path: str) -> None:
    """Imports the stubs from ``path`` instead of generating them: a rogatoryctl zipapp
    (tools/rogatoryctl/build_zipapp.py) carries them, so it needs no protoc. Call before
    :func:`stubs`."""
    global _bundled_stubs_dir
    _bundled_stubs_dir = path


@functools.lru_cache(maxsize=None)
def stubs() -> types.SimpleNamespace:
    """Generates the stubs if needed, imports them and returns them by short name.

    The namespace has ``types``, ``events``, ``intake``/``intake_grpc``,
    ``routing``/``routing_grpc``, ``deadlines``/``deadlines_grpc``,
    ``notification``/``notification_grpc``, ``test_clock``/``test_clock_grpc``, ``status``,
    ``error_details``, ``health``/``health_grpc`` and ``reflection``/``reflection_grpc``.
    """
    out_dir = pathlib.PurePath(_bundled_stubs_dir) if _bundled_stubs_dir else generate_stubs()
    if str(out_dir) not in sys.path:
        sys.path.insert(0, str(out_dir))
    # The generated grpc/health and grpc/reflection packages live beside the real `grpc`
    # package, as the pip packages grpcio-health-checking and grpcio-reflection would:
    # extend its search path so `grpc.health.v1` resolves into the stubs directory.
    extra_grpc_dir = str(out_dir / "grpc")
    if extra_grpc_dir not in grpc.__path__:
        grpc.__path__.append(extra_grpc_dir)
    importlib.invalidate_caches()
    return types.SimpleNamespace(
        **{short: importlib.import_module(name) for short, name in _MODULES.items()})


# --------------------------------------------------------------------------------------
# Callers and channels
# --------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


#: Default lifetimes of minted tokens: the services accept at most 1 h for callers'
#: tokens and 10 min for service tokens (auth-max-token-lifetime,
#: auth-max-service-token-lifetime).
CALLER_TOKEN_TTL_S = 3600
SERVICE_TOKEN_TTL_S = 300


def is_service_token(sub: str, roles: Sequence[str] = ()) -> bool:
    """Whether a token naming ``sub`` with ``roles`` is a service token: it names a Rogatory
    service (``rogatory-<service>``) or claims the ``service`` role. Only a key declared
    ``"subjects": "services"`` signs those, and only a key declared ``"authorities"`` signs
    the others."""
    return sub.startswith("rogatory-") or "service" in roles


def mint_dev_token(key_file: Union[str, os.PathLike], sub: str, state: str = "",
                   roles: Sequence[str] = (), ttl_s: Optional[int] = None,
                   issuer: str = "rogatory-dev", audience: str = "rogatory",
                   kid: Optional[str] = None) -> str:
    """Mints an HS256 JWT naming a caller, with a development key set's shared secret.

    ``key_file`` is a key set ({"keys": [{"kid", "alg": "HS256", "subjects", "secret":
    <base64>}]}, like deploy/dev-auth/keys.json) or one key object. The key is the one
    whose ``subjects`` fits the token (``services`` for a service token, see
    :func:`is_service_token`; ``authorities`` otherwise; a key without ``subjects`` fits
    both), or ``kid``'s when given. The token carries iss, sub, aud, iat, exp (now +
    ``ttl_s``, by default 1 h for callers and 5 min for services; negative for an already
    expired token), ``state`` when given and ``roles``.
    """
    with open(key_file, encoding="utf-8") as f:
        data = json.load(f)
    keys = data.get("keys", [data]) if isinstance(data, dict) else []
    service = is_service_token(sub, roles)
    wanted = "services" if service else "authorities"
    candidates = [k for k in keys if isinstance(k, dict) and k.get("alg") == "HS256"
                  and (k.get("kid") == kid if kid is not None
                       else k.get("subjects", wanted) == wanted)]
    if len(candidates) != 1:
        raise ValueError(f"{key_file}: expected one HS256 key"
                         + (f" with kid {kid!r}" if kid else f" for {wanted}")
                         + f", found {len(candidates)}")
    key = candidates[0]
    if ttl_s is None:
        ttl_s = SERVICE_TOKEN_TTL_S if service else CALLER_TOKEN_TTL_S
    secret = base64.b64decode(key["secret"], validate=True)
    now = int(time.time())
    header = {"alg": "HS256", "kid": key["kid"], "typ": "JWT"}
    claims = {"iss": issuer, "sub": sub, "aud": audience, "iat": now, "exp": now + ttl_s,
              "roles": list(roles)}
    if state:
        claims["state"] = state
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(signature)


#: Minted development tokens by (key file, caller), with their expiry: re-minted when less
#: than five minutes are left.
_TOKEN_CACHE: dict[tuple, tuple[str, float]] = {}


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who makes a call.

    Every call carries ``authorization: Bearer <JWT>``: ``token`` when given, else a token
    minted with the development key set ``key_file`` (deploy/dev-auth/keys.json by
    default). The development ``x-rogatory-*`` metadata goes along too, for services run
    with ``--auth=metadata``; token authentication ignores it.

    Attributes:
      authority_id: The calling authority's id ("FR-TJ-PARIS-JI"); a Rogatory service is
        "rogatory-<service>" with the role "service".
      state: Its state, ISO 3166-1 alpha-2 ("FR").
      roles: Its roles, lower case ("issuing", "central", "operator").
      token: A ready token to send instead of minting one.
      key_file: The development key set to mint with.
      ttl_s: Lifetime of minted tokens; None: 1 h for callers, 5 min for services.
    """

    authority_id: str
    state: str
    roles: tuple[str, ...] = ("issuing",)
    token: Optional[str] = None
    key_file: Optional[Union[str, os.PathLike]] = None
    ttl_s: Optional[int] = None

    def bearer_token(self) -> str:
        """The token this caller presents (minted and cached when not given)."""
        if self.token is not None:
            return self.token
        key_file = str(self.key_file or DEV_KEY_FILE)
        ttl_s = self.ttl_s
        if ttl_s is None:
            ttl_s = (SERVICE_TOKEN_TTL_S if is_service_token(self.authority_id, self.roles)
                     else CALLER_TOKEN_TTL_S)
        cache_key = (key_file, self.authority_id, self.state, tuple(self.roles), ttl_s)
        cached = _TOKEN_CACHE.get(cache_key)
        if cached is not None and cached[1] - time.time() > min(300, ttl_s / 3):
            return cached[0]
        token = mint_dev_token(key_file, self.authority_id, self.state, self.roles, ttl_s)
        _TOKEN_CACHE[cache_key] = (token, time.time() + ttl_s)
        return token

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata that carries this caller."""
        return (
            ("authorization", "Bearer " + self.bearer_token()),
            ("x-rogatory-authority", self.authority_id),
            ("x-rogatory-state", self.state),
            ("x-rogatory-roles", ",".join(self.roles)),
        )


class _CallDetails(
        collections.namedtuple(
            "_CallDetails",
            ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    """Concrete call details: grpc.ClientCallDetails itself is abstract."""


class _CallerMetadataInterceptor(
        grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
        grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds a caller's metadata to every call made on a channel."""

    def __init__(self, caller: Caller):
        self._caller = caller

    def _with_metadata(self, details: grpc.ClientCallDetails) -> _CallDetails:
        return _CallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=tuple(details.metadata or ()) + self._caller.metadata(),
            credentials=details.credentials,
            wait_for_ready=getattr(details, "wait_for_ready", None),
            compression=getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._with_metadata(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._with_metadata(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._with_metadata(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._with_metadata(client_call_details), request_iterator)


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS channel: the CA that signed the server's certificate and, for
    mutual TLS, the client's certificate and key (deploy/tls/make-certs.sh writes ca.crt,
    client.crt and client.key). ``server_name`` overrides the name checked against the
    server's certificate (default: the host of the address)."""

    ca_file: str
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None

    @classmethod
    def from_env(cls) -> Optional["TlsFiles"]:
        """From ROGATORY_CLIENT_CA_FILE (required), ROGATORY_CLIENT_CERT_FILE and
        ROGATORY_CLIENT_KEY_FILE; None when ROGATORY_CLIENT_CA_FILE is unset."""
        ca = os.environ.get("ROGATORY_CLIENT_CA_FILE")
        if not ca:
            return None
        return cls(ca, os.environ.get("ROGATORY_CLIENT_CERT_FILE") or None,
                   os.environ.get("ROGATORY_CLIENT_KEY_FILE") or None)

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Optional[str]) -> Optional[bytes]:
            return pathlib.Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file), private_key=read(self.key_file),
            certificate_chain=read(self.cert_file))


def connect(addr: str, caller: Optional[Caller] = None,
            tls: Optional[TlsFiles] = None) -> grpc.Channel:
    """Opens a channel to ``addr`` ("host:port"): TLS with ``tls`` (or, when None, with
    :meth:`TlsFiles.from_env`), else insecure.

    If ``caller`` is given, every call on the channel carries its metadata. The channel is
    a context manager; close it when done.
    """
    tls = tls or TlsFiles.from_env()
    if tls is None:
        channel = grpc.insecure_channel(addr)
    else:
        options = ([("grpc.ssl_target_name_override", tls.server_name)]
                   if tls.server_name else [])
        channel = grpc.secure_channel(addr, tls.credentials(), options=options)
    if caller is None:
        return channel
    return grpc.intercept_channel(channel, _CallerMetadataInterceptor(caller))


@contextlib.contextmanager
def _channel_for(target: Union[str, grpc.Channel]):
    """Yields a channel for an address (opened and closed here) or an existing channel."""
    if isinstance(target, str):
        with connect(target) as channel:
            yield channel
    else:
        yield target


# --------------------------------------------------------------------------------------
# Health and reflection
# --------------------------------------------------------------------------------------


def health_check(target: Union[str, grpc.Channel], service_name: str = "",
                 timeout: float = 2.0) -> str:
    """Asks grpc.health.v1.Health/Check about one service.

    Args:
      target: An address ("127.0.0.1:50051") or an open channel.
      service_name: "" for the server as a whole (liveness), or a full service name
        ("rogatory.intake.v1.IntakeService") for that service's readiness.
      timeout: Deadline of the call, in seconds.

    Returns:
      The status name: "SERVING", "NOT_SERVING", "UNKNOWN", or "SERVICE_UNKNOWN" when the
      server answers NOT_FOUND (it does not know the name).

    Raises:
      grpc.RpcError: any other failure (unreachable server, deadline exceeded).
    """
    pb = stubs()
    with _channel_for(target) as channel:
        stub = pb.health_grpc.HealthStub(channel)
        try:
            response = stub.Check(pb.health.HealthCheckRequest(service=service_name),
                                  timeout=timeout)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return "SERVICE_UNKNOWN"
            raise
    return pb.health.HealthCheckResponse.ServingStatus.Name(response.status)


def list_services(target: Union[str, grpc.Channel], timeout: float = 5.0) -> list[str]:
    """Lists the services a server registers, through server reflection (v1alpha).

    Returns:
      The full service names, sorted.

    Raises:
      grpc.RpcError: the call failed (UNIMPLEMENTED if the server has no reflection).
      RuntimeError: the server answered with a reflection ErrorResponse.
    """
    pb = stubs()
    with _channel_for(target) as channel:
        stub = pb.reflection_grpc.ServerReflectionStub(channel)
        request = pb.reflection.ServerReflectionRequest(list_services="")
        for response in stub.ServerReflectionInfo(iter([request]), timeout=timeout):
            kind = response.WhichOneof("message_response")
            if kind == "list_services_response":
                return sorted(s.name for s in response.list_services_response.service)
            if kind == "error_response":
                raise RuntimeError(
                    f"reflection error {response.error_response.error_code}: "
                    f"{response.error_response.error_message}")
    raise RuntimeError("reflection stream ended without a list_services answer")


# --------------------------------------------------------------------------------------
# Error details
# --------------------------------------------------------------------------------------


def status_details(error: grpc.RpcError):
    """Decodes the google.rpc.Status that a failed call carries, or returns None."""
    pb = stubs()
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == STATUS_DETAILS_KEY:
            return pb.status.Status.FromString(value)
    return None


def error_info(error: grpc.RpcError):
    """The google.rpc.ErrorInfo of a failed call (domain "rogatory", reason one of
    rogatory.common.v1.ErrorReason's names without "ERROR_REASON_"), or None."""
    pb = stubs()
    status = status_details(error)
    for detail in status.details if status is not None else ():
        info = pb.error_details.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of every google.rpc.BadRequest detail of an error.

    Returns an empty list when the error carries no details or no BadRequest.
    """
    pb = stubs()
    status = status_details(error)
    if status is None:
        return []
    violations = []
    for detail in status.details:
        if detail.type_url.rsplit("/", 1)[-1] != _BAD_REQUEST_TYPE:
            continue
        bad_request = pb.error_details.BadRequest()
        detail.Unpack(bad_request)
        violations.extend((v.field, v.description) for v in bad_request.field_violations)
    return violations


# --------------------------------------------------------------------------------------
# Polling and sample data
# --------------------------------------------------------------------------------------

T = TypeVar("T")


def poll_until(probe: Callable[[], T], timeout: float, interval: float = 0.1,
               description: str = "condition") -> T:
    """Calls ``probe`` until it returns a truthy value or ``timeout`` seconds pass.

    Exceptions from ``probe`` count as "not yet" (the last one is chained on timeout).

    Returns:
      The first truthy value.

    Raises:
      TimeoutError: the condition did not hold in time.
    """
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    last_value: object = None
    while True:
        try:
            last_value = probe()
            if last_value:
                return last_value
        except Exception as error:  # noqa: BLE001 - a failing probe just means "not yet".
            last_error = error
        if time.monotonic() >= deadline:
            message = f"{description} not reached within {timeout:.1f}s (last: {last_value!r})"
            raise TimeoutError(message) from last_error
        time.sleep(interval)


def wait_for_health(target: str, service_name: str = "", want: str = "SERVING",
                    timeout: float = 20.0) -> None:
    """Waits until a health check of ``service_name`` answers ``want``."""
    def probe() -> bool:
        return health_check(target, service_name, timeout=1.0) == want
    poll_until(probe, timeout, description=f"health {service_name or '<server>'} {want}")


def example_eio_content(*, issuing_authority_id: str = "FR-TJ-PARIS-JI",
                        issuing_state: str = "FR", requested_state: str = "DE",
                        source_language: str = "fr", offence_note: str = ""):
    """A well-formed European Investigation Order, with made-up data only.

    Issued by a French investigating judge to Germany: one suspect, one fraud offence and
    a request for bank account information (EIO Art 26). ``offence_note`` is appended to
    the offence description, to make two otherwise identical requests differ.
    """
    pb = stubs()
    types_pb, intake = pb.types, pb.intake
    return intake.RequestContent(
        instrument=types_pb.INSTRUMENT_EIO,
        urgency=types_pb.URGENCY_NORMAL,
        issuing_authority=types_pb.AuthorityRef(
            authority_id=issuing_authority_id, state=issuing_state,
            display_name="Tribunal judiciaire de Paris, juge d'instruction"),
        requested_state=requested_state,
        source_language=source_language,
        legal_basis="Directive 2014/41/EU",
        issuer_reference="JI-2024-000123 (fictitious)",
        statement_of_facts=(
            "Fictitious facts for a demonstration: between 2022 and 2023 the suspect is "
            "believed to have obtained payments through forged invoices and moved the "
            "proceeds to an account held in Germany."),
        subjects=[intake.Subject(
            role=intake.SUBJECT_ROLE_SUSPECT,
            family_name="Exemple",
            given_names="Camille",
            birth_date=types_pb.Date(year=1980, month=1, day=1),
            nationalities=["FR"],
        )],
        offences=[intake.Offence(
            description="Organised fraud using forged invoices." + offence_note,
            legal_provision="Art. 313-1 Code penal",
            listed_offence_category="FRAUD",
            maximum_penalty_months=84,
        )],
        measures=[intake.Measure(
            type=intake.MEASURE_TYPE_BANK_ACCOUNT_INFORMATION,
            description="Identify accounts held by the suspect at German banks and their "
                        "balances.",
        )],
    )


def malformed_content():
    """A request that breaks several rules at once and holds no personal data.

    Instrument unspecified, requested state "germany" (not ISO alpha-2), empty source
    language, no issuing authority, and a subject whose family name is empty.
    """
    pb = stubs()
    intake = pb.intake
    return intake.RequestContent(
        instrument=pb.types.INSTRUMENT_UNSPECIFIED,
        requested_state="germany",
        source_language="",
        subjects=[intake.Subject(role=intake.SUBJECT_ROLE_SUSPECT, family_name="")],
    )


#: Field paths that :func:`malformed_content` gets wrong, as BadRequest should name them.
MALFORMED_FIELDS = (
    "content.instrument",
    "content.requested_state",
    "content.source_language",
    "content.issuing_authority",
    "content.subjects[0].family_name",
)


def missing_fields(violations: Iterable[tuple[str, str]],
                   expected: Iterable[str]) -> list[str]:
    """The expected field paths that no violation names, matching loosely by prefix.

    A violation of ``content.issuing_authority.authority_id`` counts for the expected path
    ``content.issuing_authority``.
    """
    fields = [field for field, _ in violations]

    def named(path: str) -> bool:
        return any(f == path or f.startswith(path + ".") or f.startswith(path + "[")
                   for f in fields)

    return [path for path in expected if not named(path)]
