"""A small game server that embeds thengine through its Python API.

It runs one hunt in-process: bot players race through it, people can play along over
a line-based TCP protocol (try `nc 127.0.0.1 7777`), and an announcer follows the
event log live and prints the leaderboard. Everything goes through one engine:

    python examples/game_server.py --db game.db --seconds 30 --port 7777 --bots 20

TCP commands (one per line): ``join NAME``, ``answer CLUE TEXT...``, ``hint CLUE``,
``me``, ``board``, ``quit``. Every reply is one line.
"""

from __future__ import annotations

import argparse
import random
import sys
from typing import Any

import trio

import thengine

HUNT_ID = "harbour-run"
HUNT = {
    "id": HUNT_ID,
    "title": "Harbour Run",
    "order": "sequential",
    "clues": [
        {"id": "lighthouse", "prompt": "What guides ships home at night?", "answers": ["lighthouse", "a lighthouse"],
         "points": 100, "hints": [{"text": "It stands at the end of the pier.", "penalty": 10}]},
        {"id": "anchor", "prompt": "What keeps a ship from drifting?", "answers": ["anchor", "an anchor"],
         "points": 150, "hints": [{"text": "Heavy, iron, on a chain.", "penalty": 15}]},
        {"id": "gull", "prompt": "Which noisy bird steals your chips?", "answers": ["gull", "seagull", "a gull"],
         "points": 200},
    ],
}
ANSWERS = {clue["id"]: clue["answers"][0] for clue in HUNT["clues"]}


async def ensure_hunt(engine: thengine.Engine) -> None:
    """Create and start the hunt unless an earlier run did."""
    known = await engine.query(thengine.Hunt(hunt_id=HUNT_ID))
    if isinstance(known, thengine.Result):  # unknown_hunt: first run on this database
        definition = thengine.parse_definition(HUNT)
        await engine.submit(thengine.CreateHunt(definition=definition), command_id=f"create-{HUNT_ID}")
        known = await engine.query(thengine.Hunt(hunt_id=HUNT_ID))
    if isinstance(known, dict) and known["status"] != "running":
        await engine.submit(thengine.StartHunt(hunt_id=HUNT_ID))


async def bot(engine: thengine.Engine, name: str, rng: random.Random) -> None:
    """Join, then work through the open clue: sometimes wrong, sometimes a hint, then right."""
    await engine.submit(thengine.JoinHunt(hunt_id=HUNT_ID, player_id=name))
    while True:
        await trio.sleep(rng.uniform(0.05, 0.4))
        me = await engine.query(thengine.Player(hunt_id=HUNT_ID, player_id=name))
        if not isinstance(me, dict) or me["treasure_found"]:
            return
        open_clues = [c for c in me["clues"] if not c["solved"]]
        if not open_clues:
            return
        clue = open_clues[0]
        roll = rng.random()
        if roll < 0.1 and clue["hints_left"]:
            command: Any = thengine.RequestHint(hunt_id=HUNT_ID, player_id=name, clue_id=clue["id"])
        else:
            answer = ANSWERS[clue["id"]] if roll > 0.45 else rng.choice(["boat", "sand", "crab", "wave"])
            command = thengine.SubmitAnswer(hunt_id=HUNT_ID, player_id=name, clue_id=clue["id"], answer=answer)
        await engine.submit(command)


async def announcer(engine: thengine.Engine, after_seq: int, out: Any) -> None:
    """Follow the log live: shout about solves and treasures, print the board every second."""
    async def board_every_second() -> None:
        while True:
            await trio.sleep(1)
            board = await engine.query(thengine.Leaderboard(hunt_id=HUNT_ID, limit=3))
            if isinstance(board, dict):
                top = ", ".join(f"{e['rank']}. {e['id']} {e['score']}" for e in board["entries"])
                print(f"[board] {top or 'nobody yet'}", file=out, flush=True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(board_every_second)
        async with engine.subscribe(hunt_id=HUNT_ID, after_seq=after_seq) as events:
            async for event in events:
                if event.type == "treasure_found":
                    print(f"[event] {event.data['player_id']} found the treasure with {event.data['score']}!",
                          file=out, flush=True)
                elif event.type == "clue_solved":
                    print(f"[event] {event.data['player_id']} solved {event.data['clue_id']}", file=out, flush=True)


async def serve_player(engine: thengine.Engine, stream: trio.SocketStream) -> None:
    """One TCP player: line commands in, one line out each."""
    name: str | None = None
    buffer = b""

    async def say(text: str) -> None:
        await stream.send_all(text.encode() + b"\n")

    await say(f"welcome to {HUNT['title']}: join NAME, answer CLUE TEXT, hint CLUE, me, board, quit")
    async with stream:
        while True:
            data = await stream.receive_some(4096)
            if not data:
                return
            buffer += data
            if len(buffer) > 4096:
                await say("line too long")
                return
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                words = line.decode(errors="replace").split()
                if not words:
                    continue
                verb, args = words[0].lower(), words[1:]
                if verb == "quit":
                    await say("bye")
                    return
                if verb == "join" and len(args) == 1:
                    try:
                        result = await engine.submit(thengine.JoinHunt(hunt_id=HUNT_ID, player_id=args[0]))
                    except ValueError as exc:  # not a valid id
                        await say(f"error: {exc}")
                        continue
                    name = args[0] if result.ok or result.error.code == "already_joined" else name
                    await say(f"joined as {args[0]}" if result.ok else f"error: {result.error.message}")
                elif verb == "board":
                    board = await engine.query(thengine.Leaderboard(hunt_id=HUNT_ID, limit=5))
                    await say(" | ".join(f"{e['rank']}. {e['id']} {e['score']}" for e in board["entries"]) or "empty")
                elif name is None:
                    await say("join first: join NAME")
                elif verb == "me":
                    me = await engine.query(thengine.Player(hunt_id=HUNT_ID, player_id=name))
                    clues = "; ".join(f"{c['id']}: {c['prompt']}" for c in me["clues"] if not c["solved"])
                    await say(f"score {me['score']}, rank {me['rank']}; open: {clues or 'none'}")
                elif verb in ("answer", "hint") and args:
                    try:
                        if verb == "answer":
                            command: Any = thengine.SubmitAnswer(hunt_id=HUNT_ID, player_id=name, clue_id=args[0],
                                                                 answer=" ".join(args[1:]))
                        else:
                            command = thengine.RequestHint(hunt_id=HUNT_ID, player_id=name, clue_id=args[0])
                    except ValueError as exc:
                        await say(f"error: {exc}")
                        continue
                    result = await engine.submit(command)
                    if not result.ok:
                        await say(f"error: {result.error.message}")
                    else:
                        await say(", ".join(f"{e.type} {e.data.get('text', '')}".strip() for e in result.events))
                else:
                    await say("unknown command")


async def main(db: str, seconds: float, port: int | None, bots: int, seed: int) -> None:
    out = sys.stdout
    async with thengine.open_engine(db, shards=2, sync="normal") as engine:
        await ensure_hunt(engine)
        start_seq = engine.committed_seq
        rng = random.Random(seed)
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(announcer, engine, start_seq, out)
                if port is not None:
                    listeners = await nursery.start(trio.serve_tcp, lambda s: serve_player(engine, s), port)
                    address = listeners[0].socket.getsockname()
                    print(f"[server] players: nc {address[0]} {address[1]}", file=out, flush=True)
                for i in range(bots):
                    nursery.start_soon(bot, engine, f"bot{i:02d}-{seed}", random.Random(rng.random()))
        written = engine.committed_seq - start_seq
        board = await engine.query(thengine.Leaderboard(hunt_id=HUNT_ID, limit=3))
    top = ", ".join(f"{e['id']} {e['score']}" for e in board["entries"]) if isinstance(board, dict) else "-"
    print(f"[done] {written} events written this run; top: {top}", file=out, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="game.db", help="the database (made if missing)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to run")
    parser.add_argument("--port", type=int, default=7777, help="TCP port for people (0: any free port; -1: none)")
    parser.add_argument("--bots", type=int, default=20, help="bot players")
    parser.add_argument("--seed", type=int, default=1, help="the bots' random seed")
    args = parser.parse_args()
    trio.run(main, args.db, args.seconds, None if args.port < 0 else args.port, args.bots, args.seed)
