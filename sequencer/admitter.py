"""Admission of transaction batches in worker processes, beside the event loop.

Admitting a transaction is ~80 us of CPU, ~55 us of it the Ed25519 check. Threads
cannot spread a batch's checks over the cores: the decoding and checks around each
signature check hold the GIL, so the admission threads and the event loop take turns
(bench/sequencer.py, 2 cores: ~12,900 batched tx/s with admission on threads against
~17,000/s in worker processes). So a batch is split across a few worker processes
(one per core by default, started by the first batch), each `python -m
sequencer.admitter FD` talking length-prefixed pickles over a socketpair that the
loop reads and writes without blocking:

    request:  (request id, next height, [SignedTx bytes, ...])
    response: (request id, [(id, expiry height) | XrollupError, ...])  or a str
              naming an unexpected error

Single submissions are not sent here: one hand-off per call costs more CPU than
the check (see SequencerService.SubmitTransaction). The workers are pure (the same
admission.admit_tx on the genesis they were given), hold no state, ignore
SIGINT/SIGTERM and exit when the socket closes, so they end with the sequencer
however it ends. A worker that dies fails its in-flight requests with UNAVAILABLE
and batches go to the others, then to threads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from sequencer.core.admission import Admitted, admit_each
from xrollup.errors import Unavailable, XrollupError
from xrollup.genesis import Genesis, decode_genesis, encode_genesis
from xrollup.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

_LEN = struct.Struct(">I")
# A batch smaller than this goes to one worker: splitting costs more than it saves.
MIN_CHUNK = 32

_Reply = list[Admitted] | XrollupError | str


def admit_encoded(raw: Sequence[bytes], genesis: Genesis, next_height: int) -> list[Admitted]:
    """Admit serialized SignedTx messages: each one's (id, expiry) or its error."""
    return admit_each((pb.SignedTx.FromString(data) for data in raw), genesis, next_height)


# ---------------------------------------------------------------- the worker side


def _read_frame(f: BinaryIO) -> bytes | None:
    head = f.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    body = f.read(n)
    return body if len(body) == n else None


def worker_main(fd: int) -> None:
    """Serve admission requests on socket `fd` until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    rfile = sock.makefile("rb")
    first = _read_frame(rfile)
    if first is None:
        return
    genesis = decode_genesis(first.decode())
    while (frame := _read_frame(rfile)) is not None:
        req_id, next_height, raw = pickle.loads(frame)
        result: _Reply
        try:
            result = admit_encoded(raw, genesis, next_height)
        except Exception as e:  # a bug, not a refusal: the caller answers INTERNAL
            result = f"{type(e).__name__}: {e}"
        body = pickle.dumps((req_id, result), protocol=pickle.HIGHEST_PROTOCOL)
        sock.sendall(_LEN.pack(len(body)) + body)


# ---------------------------------------------------------------- the loop side


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    sock: socket.socket
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    # request id -> (transactions, their future)
    pending: dict[int, tuple[int, asyncio.Future[list[Admitted]]]] = field(default_factory=dict)
    load: int = 0  # transactions in flight
    alive: bool = True
    task: asyncio.Task[None] | None = None


class Admitter:
    """Admission of transaction batches in `processes` worker processes, started
    by the first batch: a sequencer that is never sent one (most devnets) does not
    pay for them, and its start does not wait for them (each is a Python process
    importing the admission checks: as much CPU as the sequencer's own start)."""

    def __init__(self, genesis: Genesis, processes: int) -> None:
        self.genesis = genesis
        self.processes = processes
        self._workers: list[_Worker] = []
        self._next_id = 0
        self._closing = False
        self._starting: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """False once closed, or once every worker stopped (or never came up)."""
        if self._closing:
            return False
        return self._starting is None or any(w.alive for w in self._workers)

    async def start(self, timeout: float = 30.0) -> None:
        """Start the workers and wait until each has answered once. The first
        batch does it; the batches that come meanwhile wait for the same start.
        When it fails they get Unavailable (retry) and later ones go to threads."""
        if self._starting is None:
            self._starting = asyncio.create_task(self._start(timeout), name="admitter-start")
        if not self._starting.done():
            await asyncio.shield(self._starting)

    async def _start(self, timeout: float) -> None:
        genesis_json = encode_genesis(self.genesis).encode()
        try:
            for index in range(self.processes):
                if self._closing:
                    raise Unavailable("sequencer is shutting down")
                parent, child = socket.socketpair()
                with child:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "sequencer.admitter", str(child.fileno())],
                        pass_fds=[child.fileno()],
                        stdin=subprocess.DEVNULL,
                    )
                reader, writer = await asyncio.open_unix_connection(sock=parent)
                w = _Worker(index, proc, parent, reader, writer)
                w.task = asyncio.create_task(self._read(w), name=f"admitter-{index}")
                self._workers.append(w)
                self._send_frame(w, genesis_json)
            await asyncio.wait_for(
                asyncio.gather(*(self._request(w, [], 1) for w in self._workers)), timeout
            )
        except Exception as e:
            for w in self._workers:  # all or none: the rest exit on EOF, close() reaps them
                w.alive = False
                with contextlib.suppress(OSError):
                    w.sock.shutdown(socket.SHUT_RDWR)
            if not self._closing:
                log.error("admission workers did not start (%r); batches go to threads", e)
            raise Unavailable("admission workers did not start; retry") from e
        log.info("admission in %d worker processes", len(self._workers))

    def close(self, timeout: float = 3.0) -> None:
        """Close the sockets (the workers exit on EOF) and reap the workers."""
        self._closing = True
        for w in self._workers:
            # shutdown() takes effect at once; the transport would close the socket
            # only on a later turn of the loop, which this call blocks.
            with contextlib.suppress(OSError):
                w.sock.shutdown(socket.SHUT_RDWR)
            w.writer.close()
            if w.task is not None:
                w.task.cancel()
        for w in self._workers:
            try:
                w.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(timeout)

    # ------------------------------------------------------------ admitting

    async def admit_many(self, raw: Sequence[bytes], next_height: int) -> list[Admitted]:
        """Admit serialized SignedTx messages, split across the workers, in order."""
        if not raw:
            return []
        await self.start()
        workers = sorted(self._live(), key=lambda w: w.load)
        chunks = max(1, min(len(workers), len(raw) // MIN_CHUNK))
        bounds = [len(raw) * i // chunks for i in range(chunks + 1)]
        parts = await asyncio.gather(
            *(
                self._request(workers[i], raw[bounds[i] : bounds[i + 1]], next_height)
                for i in range(chunks)
            )
        )
        return [item for part in parts for item in part]

    def _live(self) -> list[_Worker]:
        live = [w for w in self._workers if w.alive]
        if not live or self._closing:
            raise Unavailable("no admission worker is running")
        return live

    def _request(
        self, w: _Worker, raw: Sequence[bytes], next_height: int
    ) -> asyncio.Future[list[Admitted]]:
        fut: asyncio.Future[list[Admitted]] = asyncio.get_running_loop().create_future()
        if not w.alive:
            fut.set_exception(Unavailable("admission worker stopped; retry"))
            return fut
        self._next_id += 1
        w.pending[self._next_id] = (len(raw), fut)
        w.load += len(raw)
        request = (self._next_id, next_height, list(raw))
        self._send_frame(w, pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
        return fut

    @staticmethod
    def _send_frame(w: _Worker, body: bytes) -> None:
        w.writer.write(_LEN.pack(len(body)) + body)

    async def _read(self, w: _Worker) -> None:
        try:
            while True:
                head = await w.reader.readexactly(_LEN.size)
                body = await w.reader.readexactly(_LEN.unpack(head)[0])
                req_id, reply = pickle.loads(body)
                count, fut = w.pending.pop(req_id)
                w.load -= count
                _resolve(fut, reply)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as e:
            if not self._closing:
                log.error(
                    "admission worker %d (pid %d) stopped: %s; %d left",
                    w.index,
                    w.proc.pid,
                    e,
                    sum(x.alive for x in self._workers) - 1,
                )
        finally:
            w.alive = False
            pending, w.pending = w.pending, {}
            for _count, fut in pending.values():
                _resolve(fut, Unavailable("admission worker stopped; retry"))
            with contextlib.suppress(Exception):
                w.writer.close()


def _resolve(fut: asyncio.Future[list[Admitted]], reply: _Reply) -> None:
    if fut.done():  # the call that waited was cancelled
        return
    if isinstance(reply, list):
        fut.set_result(reply)
    elif isinstance(reply, XrollupError):
        fut.set_exception(reply)
    else:
        fut.set_exception(RuntimeError(f"admission worker: {reply}"))


if __name__ == "__main__":
    worker_main(int(sys.argv[1]))
    os._exit(0)
