"""The ceiling: a bare-bones asyncio line server that speaks just enough FastAGI.

It reads the header block, then sends the benchmark's 20 command lines one at a time, reading
one reply line after each (only checking it is a ``200``), and closes: no parsing, routing,
session state, timeouts or limits. Whatever callcore's server does beyond this is the cost of
its features. Run by ``agi_bench.py``; not meant to be used on its own.
"""

from __future__ import annotations

import argparse
import asyncio

from agi_bench import HOST, SCRIPT, raise_fd_limit, run_on, serve_until_stdin_closes

LINES = tuple(line for line, _ in SCRIPT)


async def serve_call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\n\n")
        for line in LINES:
            writer.write(line)
            if not (await reader.readline()).startswith(b"200"):
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass  # the peer went away: nothing to finish
    finally:
        writer.close()


async def main(backlog: int) -> None:
    # The listen queue callcore's server has (its max_sessions): a burst of connects is not
    # dropped by one and kept by the other.
    server = await asyncio.start_server(serve_call, HOST, 0, backlog=backlog)

    async def close() -> None:
        server.close()
        await server.wait_closed()

    await serve_until_stdin_closes(server.sockets[0].getsockname()[1], close)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loop", default="asyncio", choices=("uvloop", "asyncio"))
    parser.add_argument("--max-sessions", type=int, default=10_000)
    args = parser.parse_args()
    raise_fd_limit(args.max_sessions)
    run_on(args.loop, lambda: main(args.max_sessions))
