"""``lcefr board emulate up|down|status``: the emulated Cortex-A57 board on this machine."""
from __future__ import annotations

import sys

import click

from lcefr.cli._common import CliError, echo_json, json_option


@click.group()
def board():
    """Boards that lcefr runs models on (an emulated one for now)."""


@board.group()
def emulate():
    """An emulated Cortex-A57 board: qemu user-mode, Debian bookworm arm64, sshd on 127.0.0.1.

    \b
    up      build the board on first use (root: apt-get, debootstrap; a few minutes, then cached
            as build/board/rootfs-*.tar.zst) and start its sshd; a running board is kept
    down    stop its sshd and sessions (by pid) and unmount what up mounted
    status  where it is: host, user, port, key, known_hosts, python, arch, cpu, rootfs, pid, running
    Then: make jetson-bench JETSON=emulated, lcefr bench --remote emulated, lcefr jetson-setup emulated.
    Wall time on it means nothing; lcefr bench --emulate counts instructions instead.
    """


def _print(info, as_json):
    if as_json:
        echo_json(info)
        return
    if not info["running"]:
        click.echo("emulated board: not running" + (f" (cached rootfs {info['tarball']})" if info.get("tarball") else ""))
        return
    click.echo(f"emulated board: {info['user']}@{info['host']} port {info['port']}, {info['cpu']} ({info['arch']}), "
               f"pid {info['pid']}")
    click.echo(f"  key {info['key']}, known_hosts {info['known_hosts']}, python {info['python']}")
    click.echo(f"  rootfs {info['rootfs']}")


def _say(as_json):
    return (lambda _m: None) if as_json else (lambda m: click.echo(f"  {m}", err=True))


@emulate.command()
@json_option
def up(as_json):
    """Start the emulated board (building it on first use)."""
    from lcefr.board import emulate as emu

    try:
        info = emu.up(say=_say(as_json))
    except emu.CannotEmulate as err:
        raise CliError(str(err)) from None
    except emu.BoardError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    _print(info, as_json)


@emulate.command()
@json_option
def down(as_json):
    """Stop the emulated board."""
    from lcefr.board import emulate as emu

    info = emu.down()
    if as_json:
        echo_json(info)
    else:
        click.echo("emulated board: stopped" if info["stopped"] else "emulated board: was not running")


@emulate.command()
@json_option
def status(as_json):
    """Where the emulated board is and whether it runs."""
    from lcefr.board import emulate as emu

    _print(emu.status(), as_json)
