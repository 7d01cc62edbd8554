"""`thengine hunt codes`: printable QR codes for a hunt's code clues, and a sheet for A4."""

from __future__ import annotations

import html
import io
import os
from pathlib import Path

import click
import segno
from PIL import Image, ImageDraw, ImageFont

from ..domain.codes import code_for, hunt_key
from ..domain.definition import Clue, parse_definition
from ..errors import StorageError
from ..storage.store import Store
from ._group import BadInput
from .admin import hunt

#: The longest text a scan may give (what submit_answer takes).
MAX_SCAN_LEN = 256


@hunt.command("codes")
@click.argument("db", metavar="DB")
@click.argument("hunt_id", metavar="HUNT")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Directory to write CLUE.svg, CLUE.png and index.html into (made if missing).")
@click.option("--url-prefix", default="", metavar="URL",
              help="Put each code at the end of this URL (e.g. https://game.example/scan?c=), so that a "
                   "phone's camera opens your game; the whole scanned text is the answer.")
def hunt_codes(db: str, hunt_id: str, out_dir: str, url_prefix: str) -> None:
    """Write one printable QR code per code clue (by = "code") of HUNT in DB.

    Each code is derived from a secret kept in DB and the hunt id, so it solves its clue
    in this hunt only, and it is written nowhere else: not in the hunt file, not in any
    event. Submitted unchanged as the submit_answer answer, the scanned text solves the
    clue. DIR gets CLUE.svg (with the clue's title under the code), CLUE.png and
    index.html, a sheet of every code that prints on A4.

    \b
    Examples:
      thengine hunt codes thengine.db old-town --out codes/
      thengine hunt codes thengine.db old-town --out codes/ --url-prefix 'https://game.example/scan?c='
    """
    if url_prefix and not url_prefix.startswith(("https://", "http://")):
        raise BadInput(f"--url-prefix: must start with https:// or http://, got {url_prefix!r}")
    if url_prefix and url_prefix[-1] not in "/=#":
        raise BadInput(f"--url-prefix: must end with '/', '=' or '#' (the code follows it), got {url_prefix!r}")
    if not os.path.exists(db):
        raise BadInput(f"no database at {db}")
    try:
        with Store.open(db, migrate=False) as store:
            created = next(iter(store.read_hunt_events(hunt_id)), None)
            if created is None:
                raise BadInput(f"no hunt {hunt_id!r} in {db}")
            secret = store.code_secret()
    except StorageError as exc:
        raise BadInput(str(exc)) from exc
    definition = parse_definition(created.data["definition"])
    clues = [clue for clue in definition.clues if clue.by == "code"]
    if not clues:
        raise BadInput(f"hunt {hunt_id!r} has no code clues (give a clue by = \"code\" in its hunt file)")
    key = hunt_key(secret, hunt_id)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cards = []
    for number, clue in enumerate(clues, start=1):
        text = url_prefix + code_for(key, clue.id)
        if len(text) > MAX_SCAN_LEN:
            raise BadInput(f"--url-prefix: too long, the scanned text would be {len(text)} characters "
                           f"(at most {MAX_SCAN_LEN})")
        qr = segno.make(text, error="q")
        caption = _caption(clue, number)
        _captioned_png(qr, caption).save(out / f"{clue.id}.png")
        svg = _captioned_svg(qr, caption)
        (out / f"{clue.id}.svg").write_text(svg, encoding="utf-8")
        cards.append((clue, svg))
    (out / "index.html").write_text(_sheet(definition.title, cards), encoding="utf-8")
    click.echo(f"wrote {len(clues)} code{'s' if len(clues) != 1 else ''} of hunt {hunt_id} to {out}/ "
               f"(CLUE.svg, CLUE.png, index.html)")


def _caption(clue: Clue, number: int) -> str:
    return clue.title or f"Clue {number}"


def _captioned_png(qr: segno.QRCode, caption: str) -> Image.Image:
    """The code as a PNG with `caption` under it (Pillow's own font: nothing to install)."""
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=10, border=4)
    code = Image.open(io.BytesIO(buffer.getvalue())).convert("L")
    font = ImageFont.load_default(size=28)
    left, top, right, bottom = font.getbbox(caption)
    width = max(code.width, right - left + 40)
    sheet = Image.new("L", (width, code.height + bottom - top + 40), 255)
    sheet.paste(code, ((width - code.width) // 2, 0))
    ImageDraw.Draw(sheet).text(((width - (right - left)) // 2 - left, code.height + 10 - top), caption,
                               fill=0, font=font)
    return sheet


def _captioned_svg(qr: segno.QRCode, caption: str) -> str:
    """The code as SVG with `caption` under it, sized for print (about 6 cm)."""
    scale, border = 8, 4
    size = qr.symbol_size(scale=scale, border=border)[0]
    inner = qr.svg_inline(scale=scale, border=border, dark="#000", light="#fff")
    height = size + 48
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{height}" '
            f'viewBox="0 0 {size} {height}"><rect width="100%" height="100%" fill="#fff"/>{inner}'
            f'<text x="{size / 2}" y="{size + 30}" text-anchor="middle" font-family="sans-serif" '
            f'font-size="22">{html.escape(caption)}</text></svg>\n')


def _sheet(title: str, cards: list[tuple[Clue, str]]) -> str:
    """Every code on A4 pages, two by three, cut lines between them."""
    items = "\n".join(f'<figure>{svg}</figure>' for _, svg in cards)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}: codes</title>
<style>
  @page {{ size: A4; margin: 12mm; }}
  body {{ font-family: sans-serif; margin: 0; }}
  h1 {{ font-size: 14pt; margin: 0 0 6mm; }}
  main {{ display: grid; grid-template-columns: 1fr 1fr; gap: 6mm; }}
  figure {{ margin: 0; padding: 4mm; border: 0.3mm dashed #999; text-align: center; break-inside: avoid; }}
  figure svg {{ width: 70mm; height: auto; }}
  figure:nth-of-type(6n) {{ break-after: page; }}
</style></head>
<body><h1>{html.escape(title)}</h1><main>
{items}
</main></body></html>
"""
