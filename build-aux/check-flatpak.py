#!/usr/bin/env python3
"""Check the Flatpak manifests in flatpak/ without flatpak-builder: both parse
as JSON with the keys flatpak-builder needs; every local source they name
(dir, file and patch paths, and source lists such as cargo-sources.json)
exists; every downloaded source has a real sha256; cargo-sources.json is what
build-aux/flatpak-cargo-sources.py makes from today's Cargo.lock; and the
sandbox holds to the design: the app id is meson.build's, the helper is not
built (-Dhelper=disabled) but reached on the system bus
(--system-talk-name=io.github.traspaso.Helper1), and no other bus name is
granted. Exit 1 with one line per problem. Python's standard library only.

usage: check-flatpak.py [MANIFEST...]   (default: both manifests in flatpak/)
"""
import importlib.util
import json
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
MANIFESTS = ['io.github.traspaso.Traspaso.json', 'io.github.traspaso.Traspaso.Devel.json']
REQUIRED = ['id', 'runtime', 'sdk', 'command', 'modules', 'finish-args']
APP_MODULE = 'traspaso'
HELPER_NAME = '--system-talk-name=io.github.traspaso.Helper1'
LOCAL_TYPES = ('dir', 'file', 'patch')
DOWNLOADED_TYPES = ('archive', 'file', 'patch')
SHA256 = re.compile(r'[0-9a-f]{64}')


def load_generator():
    """build-aux/flatpak-cargo-sources.py as a module (its name has dashes)."""
    path = root / 'build-aux' / 'flatpak-cargo-sources.py'
    sys.dont_write_bytecode = True  # leave no __pycache__ in build-aux
    spec = importlib.util.spec_from_file_location('flatpak_cargo_sources', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def meson_app_id():
    match = re.search(r"^app_id\s*=\s*'([^']+)'", (root / 'meson.build').read_text(), re.M)
    return match.group(1) if match else None


def rel(path):
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


class Checker:
    def __init__(self):
        self.problems = []
        self.source_lists = set()  # resolved paths of the source lists the manifests name

    def problem(self, where, text):
        self.problems.append(f'{where}: {text}')

    def load_json(self, path, where):
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            self.problem(where, f'{rel(path)} does not exist')
        except json.JSONDecodeError as e:
            self.problem(where, f'{rel(path)} is not valid JSON: {e}')
        return None

    def check_sources(self, sources, base, where):
        """Sources of a module, or of a source list, relative to base."""
        if not isinstance(sources, list):
            self.problem(where, '"sources" is not a list')
            return
        for i, source in enumerate(sources):
            at = f'{where} source {i + 1}'
            if isinstance(source, str):
                path = (base / source).resolve()
                self.source_lists.add(path)
                if not path.is_file():
                    self.problem(at, f'source list {source} does not exist ({rel(path)})')
                    continue
                listed = self.load_json(path, at)
                if listed is not None:
                    self.check_sources(listed, path.parent, f'{rel(path)}')
                continue
            if not isinstance(source, dict) or 'type' not in source:
                self.problem(at, 'a source is neither a file name nor an object with a "type"')
                continue
            kind = source['type']
            at = f'{at} ({kind})'
            if kind in LOCAL_TYPES + ('archive',) and 'url' not in source:
                paths = [source['path']] if 'path' in source else []
                paths += source.get('paths', [])
                if not paths:
                    self.problem(at, 'has neither "path" nor "url"')
                for p in paths:
                    path = base / p
                    exists = path.is_dir() if kind == 'dir' else path.is_file()
                    if not exists:
                        self.problem(at, f'{p} does not exist ({rel(path.resolve())})')
            elif kind in DOWNLOADED_TYPES and 'url' in source:
                if not SHA256.fullmatch(str(source.get('sha256', ''))):
                    self.problem(at, f'{source.get("url", "?")} has no valid sha256 '
                                     f'({source.get("sha256", "missing")!r})')

    def check_modules(self, modules, base, where, found):
        if not isinstance(modules, list):
            self.problem(where, '"modules" is not a list')
            return
        for module in modules:
            if isinstance(module, str):  # a module kept in its own file
                path = base / module
                loaded = self.load_json(path, where)
                if loaded is None:
                    continue
                module, module_base = loaded, path.parent
            else:
                module_base = base
            name = module.get('name')
            at = f'{where} module {name or "?"}'
            if not name:
                self.problem(at, 'a module has no "name"')
            if name == APP_MODULE:
                found.append(module)
            self.check_sources(module.get('sources', []), module_base, at)
            self.check_modules(module.get('modules', []), module_base, at, found)

    def check_manifest(self, path, app_id):
        where = rel(path)
        manifest = self.load_json(path, where)
        if manifest is None:
            return
        if not isinstance(manifest, dict):
            self.problem(where, 'the manifest is not a JSON object')
            return
        if 'app-id' in manifest and 'id' not in manifest:
            manifest['id'] = manifest['app-id']
        for key in REQUIRED:
            if key not in manifest:
                self.problem(where, f'required key "{key}" is missing')
        if app_id and manifest.get('id') not in (None, app_id):
            self.problem(where, f'id {manifest["id"]} is not meson.build\'s app_id {app_id}, '
                                'which the app is built with')

        finish_args = manifest.get('finish-args', [])
        if HELPER_NAME not in finish_args:
            self.problem(where, f'finish-args lack {HELPER_NAME}: the app cannot reach the helper')
        for arg in finish_args:
            if arg.startswith(('--talk-name=', '--own-name=', '--system-talk-name=',
                               '--system-own-name=', '--socket=session-bus',
                               '--socket=system-bus')) and arg != HELPER_NAME:
                self.problem(where, f'finish-args grant {arg}: the app needs no bus name but '
                                    f'{HELPER_NAME.split("=", 1)[1]}')

        found = []
        self.check_modules(manifest.get('modules', []), path.parent, where, found)
        if len(found) != 1:
            self.problem(where, f'expected one module named "{APP_MODULE}", found {len(found)}')
            return
        module = found[0]
        opts = module.get('config-opts', [])
        if '-Dhelper=disabled' not in opts:
            self.problem(where, f'module {APP_MODULE}: config-opts lack -Dhelper=disabled '
                                '(a sandbox cannot install the system helper)')
        if module.get('buildsystem') != 'meson':
            self.problem(where, f'module {APP_MODULE}: buildsystem is not meson')
        env = dict(manifest.get('build-options', {}).get('env', {}))
        env.update(module.get('build-options', {}).get('env', {}))
        expected_home = f'/run/build/{APP_MODULE}/cargo'
        if env.get('CARGO_HOME') != expected_home:
            self.problem(where, f'CARGO_HOME is {env.get("CARGO_HOME")!r}, not {expected_home!r}, '
                                'where cargo-sources.json puts the vendored crates and their config')

    def check_cargo_sources(self):
        path = root / 'flatpak' / 'cargo-sources.json'
        if path.resolve() not in self.source_lists:
            self.problem(rel(path), 'no manifest lists it as a source of the app')
        if not path.is_file():
            return  # reported with the manifest that names it
        try:
            expected = load_generator().generate((root / 'Cargo.lock').read_text())
        except Exception as e:  # noqa: BLE001 - any failure is one line for CI
            self.problem('Cargo.lock', f'cannot make cargo sources from it: {e}')
            return
        current = self.load_json(path, rel(path))
        if current is not None and current != expected:
            self.problem(rel(path), 'is out of date with Cargo.lock: run '
                                    'build-aux/flatpak-cargo-sources.py')


def main():
    checker = Checker()
    app_id = meson_app_id()
    if app_id is None:
        checker.problem('meson.build', 'no app_id = \'...\' line found')
    paths = [Path(a).resolve() for a in sys.argv[1:]] or [root / 'flatpak' / m for m in MANIFESTS]
    for path in paths:
        checker.check_manifest(path, app_id)
    checker.check_cargo_sources()
    for line in checker.problems:
        print(line)
    if checker.problems:
        sys.exit(1)
    print(f'flatpak: {len(paths)} manifests OK')


if __name__ == '__main__':
    main()
