"""The Markdown tables the examples print (imported from the examples'
folder, which Python puts first on the path when it runs one of them)."""


def markdown_table(header, rows):
    """A Markdown table, the first column left-aligned, the others right."""
    widths = [max(map(len, column)) for column in zip(header, *rows)]

    def line(cells):
        padded = [cells[0].ljust(widths[0])]
        padded += [cell.rjust(w) for cell, w in zip(cells[1:], widths[1:])]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])
