#!/usr/bin/env python3
"""Write the seed corpora under fuzz/corpus/TARGET from real material: the
option ROMs QEMU ships (iPXE, SeaBIOS), the lab's captures of real kernels,
libvirt's own domain XML and a node device file, and the helper's method
bodies as zbus encodes them. usage: fuzz/seed.py"""
import glob
import os
import re
import struct
import subprocess
from pathlib import Path

here = Path(__file__).resolve().parent
repo = here.parent
corpus = here / 'corpus'


def put(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# ROMs: every iPXE and SeaBIOS image that is installed (up to 256 KiB).
for path in sorted(glob.glob('/usr/lib/ipxe/qemu/*.rom') + glob.glob('/usr/share/seabios/vgabios*.bin')):
    data = Path(path).read_bytes()
    if len(data) <= 256 * 1024:
        put('rom', Path(path).name, data)

# Addresses: the forms the parser accepts and a few it refuses.
for i, text in enumerate(['0000:01:00.0', '01:00.1', '10000:e1:1f.7', 'ffff:ff:1f.7', '01:00.0/../x', '0000:01:00.8', '']):
    put('pci_address', f'a{i}', text)

# The helper's bodies: (s) little- and big-endian, as the first byte says.
def body(text, big):
    raw = text.encode()
    fmt = '>I' if big else '<I'
    return bytes([1 if big else 0]) + struct.pack(fmt, len(raw)) + raw + b'\0'
for i, text in enumerate(['0000:01:00.0', '00:1f.3', '../../etc', 'zz:00.0']):
    put('helper_args', f'le{i}', body(text, False))
    put('helper_args', f'be{i}', body(text, True))

# Domain XML: libvirt's test domain as libvirt writes it, and each node
# device of the remote-host fixture.
try:
    xml = subprocess.run(['virsh', '-c', 'test:///default', 'dumpxml', 'test'],
                         capture_output=True, text=True, check=True).stdout
    put('domain_xml', 'libvirt-test', xml)
except (OSError, subprocess.CalledProcessError):
    pass
node = (repo / 'tests/fixtures/libvirt/remote-host.xml').read_text()
for i, m in enumerate(re.finditer(r'<device>.*?</device>', node, re.S)):
    put('domain_xml', f'nodedev{i}', m.group(0))
for i, m in enumerate(re.finditer(r'<domain.*?</domain>', node, re.S)):
    put('domain_xml', f'domain{i}', m.group(0))

# Captured roots: the GPU's files from each real capture, as records for the
# table in fuzz_targets/captured_root.rs (kind 0, slot = index in DEVICE).
DEVICE = ["uevent", "config", "class", "vendor", "device", "subsystem_vendor",
          "subsystem_device", "revision", "reset_method", "boot_vga", "rom"]
for capture in sorted((repo / 'tests/fixtures/captured').glob('*')):
    gpu = capture / 'sys/bus/pci/devices/0000:01:00.0'
    if not gpu.exists():
        continue
    records = b''
    for slot, name in enumerate(DEVICE):
        f = gpu / name
        if f.is_file():
            data = f.read_bytes()[:4096]
            records += bytes([0, slot]) + struct.pack('<H', len(data)) + data
    put('captured_root', capture.name, records)
