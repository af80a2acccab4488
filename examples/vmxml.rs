//! Print the domain XML of a passthrough VM for a host description's device
//! (a development aid): `cargo run --example vmxml -- HOST.host ADDRESS [NAME]`.
use traspaso::fixture::HostSpec;
use traspaso::host::HostRoot;
use traspaso::topology::{ScanOptions, Topology};
use traspaso::vm::{hostdevs_for, Domain, VmSpec};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(spec), Some(address)) = (args.first(), args.get(1)) else {
        eprintln!("usage: vmxml HOST.host ADDRESS [NAME]");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(spec).expect("host description");
    let dir = tempfile::tempdir().expect("temporary directory");
    HostSpec::parse(&text)
        .expect("valid description")
        .write(dir.path())
        .expect("write");
    let host = HostRoot::open(dir.path()).expect("open");
    let topology = Topology::load(&host, None, ScanOptions::default()).expect("scan");
    let address = address.parse().expect("an address");
    let hostdevs = hostdevs_for(&topology, &[address]).expect("a group");
    let vm = VmSpec {
        name: args.get(2).cloned().unwrap_or_else(|| "workstation".into()),
        memory_mib: 8192,
        vcpus: 4,
        virt_type: "kvm".into(),
        secure_boot: false,
        disk: Some("/var/lib/libvirt/images/workstation.qcow2".into()),
        iso: Some("/srv/iso/debian.iso".into()),
        devices: vec![address],
    };
    println!(
        "{}",
        Domain::passthrough(&vm, &hostdevs)
            .expect("a domain")
            .to_xml()
            .expect("XML")
    );
}
