"""Starting a devnet's processes side by side: each as soon as the addresses its
command line names are known and the processes it talks to at once are up, every
one watched at once. start_devnet knows most addresses before anything runs (the
ports each process had last time, or ones chosen free just now), so the sequencer
and the proxy start together, then the nodes and the explorer, instead of one
after another. A process whose own ports turn out to be taken (another program
may hold them now) starts again once on any port, and those started with its old
address start again once it is up; any other failure stops every process started
and raises LaunchError naming the one that failed and its log."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devnet import launcher

ArgvFor = Callable[[Mapping[str, str], bool], list[str]]
"""A process's command line from the addresses it needs and whether it must listen
on any port (else on its own: last time's or chosen)."""


@dataclass
class Start:
    """One process to start. `needs`: the addresses its command line names;
    `after`: the processes that must be up before it starts (those it connects to
    as it starts: it would log their absence and back off). `offers`: the
    addresses others reach it at, known before it runs (empty when nobody needs
    it); `offered`: the same read from the process once up. `movable`: it listens
    on fixed ports, so a failure may be a taken port and it may start again on any
    port. `probe`: for a program that writes no ready file (etcd), what says it is
    up instead of the ready file and `health` (launcher.Probe)."""

    name: str
    role: str
    rollup: str | None
    proc_dir: Path
    log: Path
    ready_file: Path
    argv_for: ArgvFor
    needs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    offers: dict[str, str] = field(default_factory=dict)
    offered: Callable[[launcher.Launched], dict[str, str]] = lambda p: {}
    movable: bool = False
    health: bool = True
    probe: launcher.Probe | None = None


def start_all(starts: list[Start], timeout: float) -> list[launcher.Launched]:
    """Start every process, each once the addresses it needs are known and the
    processes it starts after are up; return them in the order given, all up. On a
    failure, stop all and raise."""
    run = _Run({s.name: s for s in starts}, timeout)
    try:
        return run.until_all_up()
    except BaseException:
        run.stop_all()
        raise


class _Run:
    def __init__(self, starts: dict[str, Start], timeout: float) -> None:
        self.starts = starts
        self.timeout = timeout
        self.known = {k: v for s in starts.values() for k, v in s.offers.items()}
        self.starting: dict[str, launcher.Starting] = {}
        self.up: dict[str, launcher.Launched] = {}
        self.moved: set[str] = set()  # started again on any port
        self.spawned: list[launcher.Starting] = []  # every attempt, in order

    def until_all_up(self) -> list[launcher.Launched]:
        while True:
            for name, s in self.starts.items():
                waiting = name not in self.up and name not in self.starting
                ready = all(k in self.known for k in s.needs) and all(n in self.up for n in s.after)
                if waiting and ready:
                    self._spawn(s)
            for name, starting in list(self.starting.items()):
                if self.starting.get(name) is not starting:
                    continue  # stopped meanwhile by _move: it starts again later
                try:
                    p = launcher.poll_started(starting)
                except launcher.LaunchError:
                    s = self.starts[name]
                    if not s.movable or name in self.moved:
                        raise
                    self._move(s)
                    continue
                if p is not None:
                    del self.starting[name]
                    self.up[name] = p
                    self.known.update(self.starts[name].offered(p))
            if len(self.up) == len(self.starts):
                return [self.up[n] for n in self.starts]
            time.sleep(launcher.POLL_S)

    def _spawn(self, s: Start) -> None:
        argv = s.argv_for(self.known, s.name in self.moved)
        starting = launcher.spawn_process(
            s.name,
            s.role,
            s.rollup,
            argv,
            s.proc_dir,
            s.log,
            s.ready_file,
            self.timeout,
            health=s.health,
            probe=s.probe,
        )
        self.starting[s.name] = starting
        self.spawned.append(starting)

    def _move(self, s: Start) -> None:
        """`s` failed on its own ports: it starts again on any port, and every
        process started with an address it offered starts again once it is up."""
        del self.starting[s.name]
        self.moved.add(s.name)
        for key in s.offers:
            self.known.pop(key, None)
        for other in self.starts.values():
            if set(other.needs) & set(s.offers):
                starting = self.starting.pop(other.name, None)
                up = self.up.pop(other.name, None)
                if starting is not None:
                    launcher.stop_pid(starting.popen.pid, grace=5.0, popen=starting.popen)
                if up is not None:
                    launcher.stop_pid(up.pid, grace=5.0, popen=up.popen)

    def stop_all(self) -> None:
        """Stop every process spawned, the last first."""
        for s in reversed(self.spawned):
            launcher.stop_pid(s.popen.pid, grace=5.0, popen=s.popen)
