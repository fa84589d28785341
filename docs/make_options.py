"""Regenerate the option table in docs/options.rst from bgdnoise.options.OPTIONS."""

import re
from pathlib import Path

from bgdnoise.options import options_table_rst

PAGE = Path(__file__).parent / "options.rst"
START, END = ".. options-table:start", ".. options-table:end"


def render(text: str) -> str:
    """``text`` with the block between the markers replaced by the table."""
    block = f"{START}\n\n{options_table_rst()}\n{END}"
    return re.sub(rf"{re.escape(START)}.*?{re.escape(END)}", lambda _: block, text, flags=re.S)


if __name__ == "__main__":
    PAGE.write_text(render(PAGE.read_text()))
    print(f"wrote {PAGE}")
