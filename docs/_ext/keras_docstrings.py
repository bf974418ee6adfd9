"""A griffe extension that lets mkdocstrings read Keras-style docstrings.

keras-seqext writes its docstrings as Keras does: Google sections, plus
`Call arguments:`, an `Example:` whose `>>>` lines are not indented under
it, and `Args:` entries that name several arguments at once. Griffe's
Google parser knows none of these, so this extension rewrites each
docstring into the Google form it parses before mkdocstrings renders it:

- `Example:` and the lines after it, up to the next section, become an
  indented `Examples:` section, so that `>>>` lines render as code;
- `Call arguments:` becomes an "Other parameters" section titled `Call
  arguments:`, listed like `Args:`;
- an `Args:` entry such as `kernel_initializer, bias_initializer: As in
  keras.layers.LSTM.` becomes one entry per argument.

The docstrings themselves stay as they are: they are also what `help()`
shows and what the doctests run.
"""

import re

import griffe

_SECTION_TITLE = re.compile(
    r"^(Args|Arguments|Call arguments( \(.*\))?|Returns|Raises|Attributes"
    r"|Example|Examples|Reference|References|Note|Notes):$"
)
_INDENT = "    "


def keras_to_google(text):
    """Rewrites a Keras-style docstring into the Google form griffe reads."""
    lines = text.split("\n")
    out = []
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _SECTION_TITLE.match(line)
        if not match:
            out.append(line)
            index += 1
            continue
        title = match.group(1)
        body, index = _section_body(lines, index + 1)
        if title in ("Example", "Examples"):
            out.append(f"Examples: {title}:")
        elif title.startswith("Call arguments"):
            # The title is shown as it is, not as Markdown.
            out.append(f"Other parameters: {title.replace('`', '')}:")
        elif title in ("Args", "Arguments"):
            out.append(f"Args: {title}:")
            body = _split_shared_entries(body)
        else:
            out.append(line)
        out.extend(body)
    return "\n".join(out)


def _section_body(lines, start):
    """The lines of the section starting at `start`, indented under its
    title, and the index of the line after them."""
    end = start
    while end < len(lines) and not _SECTION_TITLE.match(lines[end]):
        end += 1
    body = lines[start:end]
    while body and not body[0].strip():
        body.pop(0)  # griffe takes no blank line under a title
    while body and not body[-1].strip():
        body.pop()
    if body and not body[0].startswith(" "):
        body = [_INDENT + line if line.strip() else "" for line in body]
    trailing = [""] if end < len(lines) else []
    return body + trailing, end


def _split_shared_entries(body):
    """One `Args:` entry per argument where an entry names several, as
    `a, b,` on one line and `c: Description.` on the next."""
    out = []
    names = []
    index = 0
    while index < len(body):
        line = body[index]
        index += 1
        entry = line[len(_INDENT) :]
        is_entry = line.startswith(_INDENT) and not entry.startswith(" ")
        if is_entry and ":" not in entry and entry.rstrip().endswith(","):
            names += [name.strip() for name in entry.split(",") if name.strip()]
            continue
        named, _, description = entry.partition(":")
        if not (is_entry and (names or "," in named)):
            out.append(line)
            continue
        names += [name.strip() for name in named.split(",") if name.strip()]
        continuation = []
        while index < len(body) and body[index].startswith(_INDENT * 2):
            continuation.append(body[index])
            index += 1
        for name in names:
            out += [f"{_INDENT}{name}:{description}", *continuation]
        names = []
    return out


class KerasDocstrings(griffe.Extension):
    """Rewrites every docstring with `keras_to_google` as it is loaded."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = keras_to_google(obj.docstring.value)
