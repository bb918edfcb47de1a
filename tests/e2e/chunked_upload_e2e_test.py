#!/usr/bin/python3
"""End-to-end tests of the chunked upload (StartDocumentUpload, UploadDocumentChunk,
CommitDocumentUpload; issue 20 item 3) and ListDocuments's pages, through the real intake.

A private Redis and rogatory-intake with a short upload-idle-timeout and a small quota per
request, so that expiry and the quota are reached in seconds. Run by ctest as::

    /usr/bin/python3 tests/e2e/chunked_upload_e2e_test.py --bin-dir <build>/bin
"""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import sys
import time
import uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import grpc  # noqa: E402
import intake_e2e_test as base  # noqa: E402

rc = base.rc
MIB = 1 << 20
IDLE_TIMEOUT_S = 2
REQUEST_QUOTA = 4 * MIB
ISSUER = base.ISSUER
OTHER = rc.Caller("FR-TJ-LYON-JI", "FR", ("issuing",))


class ChunkedUploadTest(base.E2ETestCase):
    SERVICES = ()

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        ports = {name: base.free_port() for name in base.SERVICE_NAMES}
        cls.intake = base.ServiceProcess("intake", cls.redis, cls.workdir, ports)
        cls.intake.process.argv += [f"--upload-idle-timeout={IDLE_TIMEOUT_S}s",
                                    f"--max-document-bytes-per-request={REQUEST_QUOTA}"]
        cls.addClassCleanup(cls.intake.stop)
        cls.intake.start()
        cls.services["intake"] = cls.intake

    def setUp(self):
        self.pb = rc.stubs()
        self.stub = self.intake_stub(caller=ISSUER)
        self.request = self.submit(self.stub)

    def start(self, data: bytes, stub=None, key: str = "", sha256: str = ""):
        pb = self.pb
        return (stub or self.stub).StartDocumentUpload(pb.intake.StartDocumentUploadRequest(
            metadata=pb.intake.DocumentUpload(
                request_id=key, id=self.request.id, kind=pb.intake.DOCUMENT_KIND_REQUEST_FORM,
                language="fr", media_type="application/pdf", title="Annex B",
                sha256=sha256 or hashlib.sha256(data).hexdigest())), timeout=5.0)

    def chunk(self, upload_id: str, offset: int, data: bytes, stub=None) -> int:
        return (stub or self.stub).UploadDocumentChunk(self.pb.intake.UploadDocumentChunkRequest(
            upload_id=upload_id, offset=offset, chunk=data), timeout=10.0).received_bytes

    def commit(self, upload_id: str, stub=None):
        return (stub or self.stub).CommitDocumentUpload(
            self.pb.intake.CommitDocumentUploadRequest(upload_id=upload_id), timeout=30.0).document

    def download(self, document_id: str) -> bytes:
        received = bytearray()
        for message in self.stub.DownloadDocument(self.pb.intake.DownloadDocumentRequest(
                id=self.request.id, document_id=document_id), timeout=30.0):
            if not message.HasField("metadata"):
                received.extend(message.chunk)
        return bytes(received)

    def staged_keys(self, upload_id: str) -> int:
        """How many of the upload's Redis keys (its state, its chunks) exist. White-box: the
        upload id holds the document's id ("<kind>-<shard>-<ulid>"), which names the shard."""
        raw = base64.urlsafe_b64decode(upload_id + "=" * (-len(upload_id) % 4)).decode()
        document_id = raw.split("|")[2]
        prefix = f"rg:{{s{document_id.split('-')[1]}}}:"
        return self.redis.command("EXISTS", f"{prefix}upload:{document_id}",
                                  f"{prefix}doc:{document_id}:data")

    def test_a_document_uploaded_in_chunks_downloads_byte_identical(self):
        data = os.urandom(2 * MIB + 12345)
        started = self.start(data)
        self.assertTrue(started.upload_id)
        self.assertEqual(started.idle_timeout.seconds, IDLE_TIMEOUT_S)
        offset = 0
        for at in range(0, len(data), MIB):
            part = data[at:at + MIB]
            offset = self.chunk(started.upload_id, at, part)
            self.assertEqual(offset, at + len(part))
        document = self.commit(started.upload_id)
        self.assertEqual(document.size_bytes, len(data))
        self.assertEqual(document.sha256, hashlib.sha256(data).hexdigest())
        self.assertTrue(self.download(document.id) == data, "downloaded bytes differ")
        history = self.stub.GetRequestHistory(self.pb.intake.GetRequestHistoryRequest(
            id=self.request.id, page_size=100), timeout=5.0).events
        added = [e.document.document_id for e in history
                 if e.type == self.pb.events.EVENT_TYPE_DOCUMENT_ADDED]
        self.assertEqual(added, [document.id])
        # The upload is over: a second commit finds nothing.
        self.assertRpcCode(grpc.StatusCode.NOT_FOUND, self.commit, started.upload_id)

    def test_a_retried_chunk_is_harmless_and_other_offsets_are_refused(self):
        data = os.urandom(3000)
        started = self.start(data)
        self.assertEqual(self.chunk(started.upload_id, 0, data[:1000]), 1000)
        # The answer was lost: the same chunk again changes nothing.
        self.assertEqual(self.chunk(started.upload_id, 0, data[:1000]), 1000)
        for offset, part in ((500, data[500:1500]),     # overlaps
                             (1500, data[1500:2000]),   # leaves a gap
                             (0, data[1000:2000])):     # the last offset, other bytes
            with self.subTest(offset=offset):
                error = self.assertRpcCode(grpc.StatusCode.INVALID_ARGUMENT, self.chunk,
                                           started.upload_id, offset, part)
                self.assertEqual([f for f, _ in rc.field_violations(error)], ["offset"])
                self.assertIn("1000", error.details())
        self.assertEqual(self.chunk(started.upload_id, 1000, data[1000:]), 3000)
        self.assertTrue(self.download(self.commit(started.upload_id).id) == data)

    def test_another_authority_cannot_continue_an_upload(self):
        data = b"x" * 100
        started = self.start(data)
        other = self.intake_stub(caller=OTHER)
        self.assertRpcCode(grpc.StatusCode.NOT_FOUND, self.chunk, started.upload_id, 0, data,
                           stub=other)
        self.assertRpcCode(grpc.StatusCode.NOT_FOUND, self.commit, started.upload_id,
                           stub=other)
        self.assertEqual(self.chunk(started.upload_id, 0, data), 100)

    def test_checksum_mismatch_is_refused_and_discards_the_upload(self):
        data = os.urandom(5000)
        started = self.start(data, sha256=hashlib.sha256(b"other bytes").hexdigest())
        self.chunk(started.upload_id, 0, data)
        error = self.assertRpcCode(grpc.StatusCode.INVALID_ARGUMENT, self.commit,
                                   started.upload_id)
        self.assertIn("metadata.sha256", [f for f, _ in rc.field_violations(error)])
        self.assertEqual(self.staged_keys(started.upload_id), 0)
        listed = self.stub.ListDocuments(self.pb.intake.ListDocumentsRequest(
            id=self.request.id), timeout=5.0).documents
        self.assertEqual(list(listed), [])

    def test_quota_exceeded_refuses_the_chunk_with_resource_exhausted(self):
        first = os.urandom(3 * MIB)
        started = self.start(first)
        for at in range(0, len(first), MIB):
            self.chunk(started.upload_id, at, first[at:at + MIB])
        self.commit(started.upload_id)
        second = os.urandom(2 * MIB)
        started = self.start(second)
        self.assertEqual(self.chunk(started.upload_id, 0, second[:MIB]), MIB)  # 4 MiB: fits
        error = self.assertRpcCode(grpc.StatusCode.RESOURCE_EXHAUSTED, self.chunk,
                                   started.upload_id, MIB, second[MIB:])
        self.assertIn("max-document-bytes-per-request", error.details())

    def test_an_abandoned_upload_expires_its_bytes_are_discarded_and_nothing_is_charged(self):
        data = os.urandom(3 * MIB)
        started = self.start(data)
        for at in range(0, len(data), MIB):
            self.chunk(started.upload_id, at, data[at:at + MIB])
        self.assertEqual(self.staged_keys(started.upload_id), 2)  # its state and its chunks
        deadline = time.monotonic() + IDLE_TIMEOUT_S + 10
        while self.staged_keys(started.upload_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.staged_keys(started.upload_id), 0, "the upload did not expire")
        self.assertRpcCode(grpc.StatusCode.NOT_FOUND, self.chunk, started.upload_id,
                           3 * MIB, b"more")
        self.assertRpcCode(grpc.StatusCode.NOT_FOUND, self.commit, started.upload_id)
        # Nothing of it counts against the quota: the whole quota is still there.
        full = os.urandom(REQUEST_QUOTA)
        again = self.start(full)
        for at in range(0, len(full), MIB):
            self.chunk(again.upload_id, at, full[at:at + MIB])
        self.assertEqual(self.commit(again.upload_id).size_bytes, REQUEST_QUOTA)

    def test_the_idempotency_key_is_shared_with_the_streaming_upload(self):
        data = os.urandom(1000)
        key = str(uuid.uuid4())
        started = self.start(data, key=key)
        self.chunk(started.upload_id, 0, data)
        document = self.commit(started.upload_id)
        again = self.start(data, key=key)
        self.assertEqual(again.upload_id, "")
        self.assertEqual(again.document.id, document.id)

        def parts():
            yield self.pb.intake.UploadDocumentRequest(metadata=self.pb.intake.DocumentUpload(
                request_id=key, id=self.request.id, kind=self.pb.intake.DOCUMENT_KIND_REQUEST_FORM,
                language="fr", media_type="application/pdf", title="Annex B",
                sha256=hashlib.sha256(data).hexdigest()))
            yield self.pb.intake.UploadDocumentRequest(chunk=data)

        self.assertEqual(self.stub.UploadDocument(parts(), timeout=10.0).document.id, document.id)

    def test_bad_input_names_the_field(self):
        started = self.start(b"abc")
        for request, field in (
                (self.pb.intake.UploadDocumentChunkRequest(upload_id="nope", offset=0,
                                                           chunk=b"a"), "upload_id"),
                (self.pb.intake.UploadDocumentChunkRequest(upload_id=started.upload_id,
                                                           offset=-1, chunk=b"a"), "offset"),
                (self.pb.intake.UploadDocumentChunkRequest(upload_id=started.upload_id,
                                                           offset=0), "chunk"),
                (self.pb.intake.UploadDocumentChunkRequest(
                    upload_id=started.upload_id, offset=0, chunk=b"a" * (MIB + 1)), "chunk")):
            with self.subTest(field=field):
                error = self.assertRpcCode(grpc.StatusCode.INVALID_ARGUMENT,
                                           self.stub.UploadDocumentChunk, request, timeout=5.0)
                self.assertEqual([f for f, _ in rc.field_violations(error)], [field])
        error = self.assertRpcCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.StartDocumentUpload,
                                   self.pb.intake.StartDocumentUploadRequest(), timeout=5.0)
        self.assertEqual([f for f, _ in rc.field_violations(error)], ["metadata"])

    def test_list_documents_pages_cover_every_document_once(self):
        ids = []
        for n in range(5):
            data = f"document {n}".encode()
            started = self.start(data)
            self.chunk(started.upload_id, 0, data)
            ids.append(self.commit(started.upload_id).id)
        seen, token, pages = [], "", 0
        while True:
            page = self.stub.ListDocuments(self.pb.intake.ListDocumentsRequest(
                id=self.request.id, page_size=2, page_token=token), timeout=5.0)
            self.assertLessEqual(len(page.documents), 2)
            seen += [d.id for d in page.documents]
            pages += 1
            token = page.next_page_token
            if not token:
                break
        self.assertEqual(pages, 3)
        self.assertEqual(seen, ids)  # the union, oldest first, no duplicates
        everything = self.stub.ListDocuments(self.pb.intake.ListDocumentsRequest(
            id=self.request.id), timeout=5.0)
        self.assertEqual([d.id for d in everything.documents], ids)
        self.assertEqual(everything.next_page_token, "")
        # A token of another request, and a tampered one, are refused naming page_token.
        other = self.submit(self.stub)
        first = self.stub.ListDocuments(self.pb.intake.ListDocumentsRequest(
            id=self.request.id, page_size=2), timeout=5.0).next_page_token
        for bad_id, bad_token in ((other.id, first), (self.request.id, first[:-2] + "xx"),
                                  (self.request.id, "garbage")):
            with self.subTest(token=bad_token):
                error = self.assertRpcCode(
                    grpc.StatusCode.INVALID_ARGUMENT, self.stub.ListDocuments,
                    self.pb.intake.ListDocumentsRequest(id=bad_id, page_token=bad_token),
                    timeout=5.0)
                self.assertEqual([f for f, _ in rc.field_violations(error)], ["page_token"])


if __name__ == "__main__":
    sys.exit(base.run_tests("rogatory-chunked-upload-e2e-", __doc__.splitlines()[0]))
