#!/usr/bin/env python3
"""Write flatpak/cargo-sources.json from Cargo.lock: the crates cargo needs,
as flatpak-builder sources, so the Flatpak builds offline.

For every crates.io package: an "archive" source (the .crate from
static.crates.io, checked by the lock's sha256) unpacked into
cargo/vendor/NAME-VERSION, and an "inline" .cargo-checksum.json beside it;
then cargo/config, which replaces crates-io with that directory. The format is
the one flatpak-builder-tools' flatpak-cargo-generator writes. The manifest
sets CARGO_HOME=/run/build/traspaso/cargo, where these land.

Only crates.io packages can be vendored this way: a package from git or from
another registry is an error. Python's standard library only.

usage: flatpak-cargo-sources.py [--lock Cargo.lock] [--output flatpak/cargo-sources.json]
"""
import argparse
import json
import sys
import tomllib
from pathlib import Path

root = Path(__file__).resolve().parent.parent
CRATES_IO = 'registry+https://github.com/rust-lang/crates.io-index'
CARGO_HOME = 'cargo'
VENDOR = f'{CARGO_HOME}/vendor'
CRATE_URL = 'https://static.crates.io/crates/{name}/{name}-{version}.crate'
CARGO_CONFIG = (
    '[source.vendored-sources]\n'
    f'directory = "{VENDOR}"\n'
    '\n'
    '[source.crates-io]\n'
    'replace-with = "vendored-sources"\n'
)


class LockError(Exception):
    """Cargo.lock holds something this script cannot vendor."""


def checksum_of(package, metadata):
    """The package's sha256: its own field (lock format 2 and later), or the
    [metadata] table of format 1."""
    if 'checksum' in package:
        return package['checksum']
    key = f'checksum {package["name"]} {package["version"]} ({package["source"]})'
    return metadata.get(key)


def generate(lock_text):
    """The list of flatpak-builder sources for a Cargo.lock's text.
    Raises LockError naming every package that cannot be vendored."""
    lock = tomllib.loads(lock_text)
    metadata = lock.get('metadata', {})
    sources = []
    problems = []
    for package in lock.get('package', []):
        name, version = package['name'], package['version']
        source = package.get('source')
        if source is None:
            continue  # this workspace's own packages
        if source.startswith('git+'):
            problems.append(f'{name} {version} comes from git ({source}): only crates.io '
                            'packages can be vendored; publish it or depend on a crates.io release')
            continue
        if source != CRATES_IO:
            problems.append(f'{name} {version} comes from {source}: only crates.io packages '
                            'can be vendored')
            continue
        checksum = checksum_of(package, metadata)
        if not checksum:
            problems.append(f'{name} {version} has no checksum in Cargo.lock: run cargo to '
                            'update the lock file')
            continue
        dest = f'{VENDOR}/{name}-{version}'
        sources.append({
            'type': 'archive',
            'archive-type': 'tar-gzip',
            'url': CRATE_URL.format(name=name, version=version),
            'sha256': checksum,
            'dest': dest,
        })
        sources.append({
            'type': 'inline',
            'contents': json.dumps({'package': checksum, 'files': {}}),
            'dest': dest,
            'dest-filename': '.cargo-checksum.json',
        })
    if problems:
        raise LockError('\n'.join(problems))
    sources.append({
        'type': 'inline',
        'contents': CARGO_CONFIG,
        'dest': CARGO_HOME,
        'dest-filename': 'config',
    })
    return sources


def render(sources):
    """The file's text: what flatpak-cargo-generator writes (4-space indent)."""
    return json.dumps(sources, indent=4) + '\n'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--lock', type=Path, default=root / 'Cargo.lock',
                        help='the Cargo.lock to read (default: the project\'s)')
    parser.add_argument('--output', type=Path, default=root / 'flatpak' / 'cargo-sources.json',
                        help='where to write (default: flatpak/cargo-sources.json; - for stdout)')
    args = parser.parse_args()
    try:
        sources = generate(args.lock.read_text())
    except OSError as e:
        sys.exit(f'flatpak-cargo-sources: cannot read {args.lock}: {e.strerror}')
    except tomllib.TOMLDecodeError as e:
        sys.exit(f'flatpak-cargo-sources: {args.lock} is not valid TOML: {e}')
    except LockError as e:
        sys.exit(f'flatpak-cargo-sources: cannot vendor {args.lock}:\n{e}')
    text = render(sources)
    if str(args.output) == '-':
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        crates = sum(1 for s in sources if s['type'] == 'archive')
        print(f'{args.output}: {crates} crates')


if __name__ == '__main__':
    main()
