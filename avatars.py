"""Identicons: a small symmetric picture for each email hash, as SVG."""

GRID = 5
CELL = 8
MARGIN = 4


def identicon_svg(digest):
    """Return an SVG identicon for a hex digest of at least 16 digits."""
    hue = int(digest[:4], 16) % 360
    color = f"hsl({hue}, 55%, 50%)"
    size = GRID * CELL + 2 * MARGIN

    cells = "".join(
        f'<rect x="{MARGIN + x * CELL}" y="{MARGIN + y * CELL}" '
        f'width="{CELL}" height="{CELL}"/>'
        for x, y in _filled_cells(digest))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" '
        f'height="{size}" viewBox="0 0 {size} {size}">'
        f'<rect width="{size}" height="{size}" fill="#f0f0f0"/>'
        f'<g fill="{color}">{cells}</g></svg>')


def _filled_cells(digest):
    """Yield the cells to fill, mirrored around the middle column."""
    bits = int(digest[4:20], 16)
    half = (GRID + 1) // 2
    for y in range(GRID):
        for x in range(half):
            if bits >> (y * half + x) & 1:
                yield x, y
                if x != GRID - 1 - x:
                    yield GRID - 1 - x, y
