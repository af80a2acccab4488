#!/usr/bin/env python3
"""Check that translations can be extracted: every Rust source with a gettext
call is listed in po/POTFILES.in, and bookworm's xgettext (which reads Rust as
C) extracts every msgid the code uses. Exit 1 with the list of problems."""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
CALL = re.compile(r'\b(n?gettext(?:_f)?)\(\s*"((?:[^"\\]|\\.)*)"(?:\s*,\s*"((?:[^"\\]|\\.)*)")?', re.S)
ESC = {'n': '\n', 't': '\t', '"': '"', '\\': '\\', "'": "'", '0': '\0'}


def unescape(s):
    return re.sub(r'\\(.)', lambda m: ESC.get(m.group(1), m.group(0)), s)


def used_msgids():
    found = {}
    for path in sorted((root / 'src').rglob('*.rs')):
        text = path.read_text()
        for m in CALL.finditer(text):
            rel = path.relative_to(root).as_posix()
            found.setdefault(unescape(m.group(2)), rel)
            if m.group(1).startswith('n') and m.group(3) is not None:
                found.setdefault(unescape(m.group(3)), rel)
    return found


def pot_msgids(pot):
    ids, current, key = set(), None, None
    for line in pot.read_text().splitlines():
        m = re.match(r'^(msgid|msgid_plural|msgstr(?:\[\d+\])?) "(.*)"$', line)
        if m:
            if key in ('msgid', 'msgid_plural') and current is not None:
                ids.add(current)
            key, current = m.group(1), unescape(m.group(2))
        elif line.startswith('"') and current is not None:
            current += unescape(line[1:-1])
        else:
            if key in ('msgid', 'msgid_plural') and current is not None:
                ids.add(current)
            key, current = None, None
    if key in ('msgid', 'msgid_plural') and current is not None:
        ids.add(current)
    return ids


def main():
    problems = []
    listed = {l.strip() for l in (root / 'po/POTFILES.in').read_text().splitlines()
              if l.strip() and not l.startswith('#')}
    used = used_msgids()
    for rel in sorted(set(used.values())):
        if rel not in listed:
            problems.append(f'{rel} has gettext calls but is not in po/POTFILES.in')
    with tempfile.TemporaryDirectory() as tmp:
        pot = Path(tmp) / 'traspaso.pot'
        subprocess.run(['xgettext', '--files-from=po/POTFILES.in', '--directory=.',
                        '--from-code=UTF-8', '--keyword=_', '--keyword=gettext_f',
                        '--keyword=ngettext_f:1,2', '--add-comments=Translators',
                        '-o', str(pot)], cwd=root, check=True, capture_output=True)
        extracted = pot_msgids(pot)
    for msgid, rel in sorted(used.items(), key=lambda kv: kv[1]):
        if msgid not in extracted:
            problems.append(f'{rel}: xgettext does not extract {msgid!r}')
    for p in problems:
        print(p)
    print(f'{len(used)} msgids in the code, {len(problems)} problems')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
