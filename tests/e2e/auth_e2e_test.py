#!/usr/bin/python3
"""End-to-end tests of token authentication against real intake and routing binaries.

Run by ctest (label e2e) as::

    /usr/bin/python3 tests/e2e/auth_e2e_test.py --bin-dir <build>/bin [unittest args]

The services run with ``--auth-keys`` and ``--service-token-key`` on the development key
set (deploy/dev-auth/keys.json; see intake_e2e_test.AUTH_ARGS). Calls without a token,
with an expired one, one for another audience or issuer, or one signed with another key
are UNAUTHENTICATED; a valid token works; health and reflection answer without a token;
and intake's relay reaches routing with its own service token, so a submitted request
gets its routing decision. Process handling comes from intake_e2e_test.py.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import grpc  # noqa: E402
import intake_e2e_test as base  # noqa: E402  (processes, Redis, services)
import routing_e2e_test as routing  # noqa: E402  (routing with a registry copy)

rc = base.rc
JUDGE = base.ISSUER


class TokenAuthE2ETest(routing.RoutingE2ETestCase):
    """Intake and routing with token authentication."""

    SERVICES = ("intake", "routing")

    def intake(self, caller: rc.Caller | None):
        channel = rc.connect(self.services["intake"].addr, caller)
        self.addCleanup(channel.close)
        return rc.stubs().intake_grpc.IntakeServiceStub(channel)

    def submit(self, stub, **kwargs):
        pb = rc.stubs()
        return stub.SubmitRequest(pb.intake.SubmitRequestRequest(
            request_id=str(uuid.uuid4()), content=rc.example_eio_content()), timeout=5,
            **kwargs).request

    def assertUnauthenticated(self, stub, why: str, **kwargs) -> None:
        error = self.assertRpcCode(grpc.StatusCode.UNAUTHENTICATED,
                                   lambda: self.submit(stub, **kwargs))
        self.assertIn(why, error.details())

    def token(self, **kwargs) -> str:
        args = dict(sub=JUDGE.authority_id, state=JUDGE.state, roles=JUDGE.roles)
        args.update(kwargs)
        return rc.mint_dev_token(rc.DEV_KEY_FILE, **args)

    def test_call_without_a_token_is_unauthenticated(self):
        # The old development metadata alone names nobody any more.
        self.assertUnauthenticated(self.intake(None), "no bearer token",
                                   metadata=(("x-rogatory-authority", JUDGE.authority_id),
                                             ("x-rogatory-roles", "issuing")))

    def test_expired_token_is_unauthenticated_without_echoing_it(self):
        token = self.token(ttl_s=-600)
        stub = self.intake(rc.Caller(JUDGE.authority_id, JUDGE.state, JUDGE.roles, token=token))
        error = self.assertRpcCode(grpc.StatusCode.UNAUTHENTICATED, lambda: self.submit(stub))
        self.assertIn("expired", error.details())
        self.assertNotIn(token.split(".")[1][:16], error.details())

    def test_token_for_another_audience_is_unauthenticated(self):
        stub = self.intake(rc.Caller(JUDGE.authority_id, JUDGE.state, JUDGE.roles,
                                     token=self.token(audience="another-system")))
        self.assertUnauthenticated(stub, "wrong audience")

    def test_token_from_another_issuer_is_unauthenticated(self):
        stub = self.intake(rc.Caller(JUDGE.authority_id, JUDGE.state, JUDGE.roles,
                                     token=self.token(issuer="somebody-else")))
        self.assertUnauthenticated(stub, "wrong issuer")

    def test_token_signed_with_another_key_is_unauthenticated(self):
        other = self.workdir / "other-keys.json"
        other.write_text(json.dumps({"keys": [{
            "kid": "dev", "alg": "HS256",
            "secret": "YW5vdGhlci1zZWNyZXQtb2YtYXQtbGVhc3QtMzItYnl0ZXMhIQ=="}]}))
        stub = self.intake(rc.Caller(JUDGE.authority_id, JUDGE.state, JUDGE.roles,
                                     key_file=other))
        self.assertUnauthenticated(stub, "bad signature")

    def test_each_key_signs_only_its_own_kind_of_token(self):
        # deploy/dev-auth/keys.json: "dev" signs callers' tokens, "dev-services" the
        # services' own (issue 16, item 7).
        forged_service = self.token(sub="rogatory-intake", state="", roles=("service",),
                                    kid="dev")
        self.assertUnauthenticated(self.intake(rc.Caller("rogatory-intake", "", ("service",),
                                                         token=forged_service)),
                                   "service token signed by a key for authorities")
        forged_judge = self.token(kid="dev-services")
        self.assertUnauthenticated(self.intake(rc.Caller(JUDGE.authority_id, JUDGE.state,
                                                         JUDGE.roles, token=forged_judge)),
                                   "caller's token signed by the services' key")

    def test_token_living_longer_than_allowed_is_unauthenticated(self):
        stub = self.intake(rc.Caller(JUDGE.authority_id, JUDGE.state, JUDGE.roles,
                                     token=self.token(ttl_s=2 * 3600)))
        self.assertUnauthenticated(stub, "lifetime (exp - iat) longer than 3600s")

    def test_service_role_needs_a_service_identity(self):
        stub = self.intake(rc.Caller(JUDGE.authority_id, JUDGE.state, ("issuing", "service")))
        self.assertUnauthenticated(stub, "role service is for Rogatory services")

    def test_health_and_reflection_answer_without_a_token(self):
        for service in self.services.values():
            self.assertEqual(rc.health_check(service.addr, "", timeout=2), "SERVING")
            self.assertEqual(rc.health_check(service.addr, service.service_name, timeout=2),
                             "SERVING")
            self.assertIn(service.service_name, rc.list_services(service.addr))

    def test_valid_token_works_and_events_reach_routing_with_service_tokens(self):
        pb = rc.stubs()
        intake = self.intake(JUDGE)
        submitted = self.submit(intake)
        self.assertEqual(submitted.status, pb.types.REQUEST_STATUS_RECEIVED)

        def decided():
            try:
                return self.routing_stub(JUDGE).GetRoutingDecision(
                    pb.routing.GetRoutingDecisionRequest(request_id=submitted.id),
                    timeout=2).decision
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise

        decision = rc.poll_until(decided, timeout=15)
        self.assertEqual(decision.request_id, submitted.id)
        # Routing's answer came back to intake through routing's relay, too.
        rc.poll_until(
            lambda: intake.GetRequest(pb.intake.GetRequestRequest(id=submitted.id),
                                      timeout=2).request.status
            == pb.types.REQUEST_STATUS_TRANSLATION_PENDING, timeout=15)
        # The relays presented service tokens; nothing was refused on the way.
        for name in self.SERVICES:
            refused = [line for line in self.log_lines(name)
                       if "Unauthenticated" in json.dumps(line)
                       and line.get("method") == "DeliverEvents"]
            self.assertEqual(refused, [], name)


class AuthSettingsE2ETest(base.unittest.TestCase):
    """Bad authentication settings stop a service at start with exit code 2."""

    def run_service(self, *flags: str) -> tuple[int, str]:
        binary = base.BIN_DIR / "rogatory-intake"
        base._require([binary])
        result = subprocess.run(
            [str(binary), "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0", *flags],
            capture_output=True, text=True, timeout=15, env=base._child_env())
        return result.returncode, result.stdout + result.stderr

    def test_metadata_auth_is_refused_in_production(self):
        code, output = self.run_service("--env=production", "--audit=log", "--auth=metadata")
        self.assertEqual(code, 2, output)
        self.assertIn("setting 'auth'", output)

    def test_token_auth_without_a_key_set_is_refused(self):
        code, output = self.run_service()
        self.assertEqual(code, 2, output)
        self.assertIn("setting 'auth-keys'", output)

    def test_production_refuses_the_development_key(self):
        code, output = self.run_service("--env=production", "--audit=log",
                                        f"--auth-keys={rc.DEV_KEY_FILE}")
        self.assertEqual(code, 2, output)
        self.assertIn("refused with env=production", output)


def main() -> int:
    return base.run_tests("rogatory-auth-e2e-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
