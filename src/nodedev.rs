//! A host's topology from libvirt's node devices (`virsh nodedev-dumpxml`),
//! for hosts Traspaso can only reach through libvirt (`qemu+ssh://…`). The
//! nodedev XML carries the address, ids, class, parent, IOMMU group and,
//! from the udev backend, the driver: enough for the same tree and the group
//! findings. What only sysfs knows (reset methods, option ROMs, the boot VGA
//! flag, ACS) stays unknown, and the findings that need it are not made.

use serde::Deserialize;

use crate::i18n::gettext_f;
use crate::pci::{PciAddress, PciClass};
use crate::topology::{self, PciDevice, Topology};

#[derive(Debug, Deserialize)]
struct Device {
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    driver: Option<Driver>,
    #[serde(rename = "capability", default)]
    capabilities: Vec<Capability>,
}

#[derive(Debug, Deserialize)]
struct Driver {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Capability {
    #[serde(rename = "@type")]
    kind: String,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    domain: Option<u32>,
    #[serde(default)]
    bus: Option<u8>,
    #[serde(default)]
    slot: Option<u8>,
    #[serde(default)]
    function: Option<u8>,
    #[serde(default)]
    product: Option<Named>,
    #[serde(default)]
    vendor: Option<Named>,
    #[serde(rename = "iommuGroup", default)]
    iommu_group: Option<Group>,
}

#[derive(Debug, Deserialize)]
struct Named {
    #[serde(rename = "@id")]
    id: String,
    #[serde(rename = "$text", default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Group {
    #[serde(rename = "@number")]
    number: u32,
}

/// Why node devices cannot make a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodedevError(pub String);

impl std::fmt::Display for NodedevError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&gettext_f(
            "libvirt described a device in a way Traspaso cannot read: {detail}",
            &[("detail", &self.0)],
        ))
    }
}

impl std::error::Error for NodedevError {}

fn hex<T: TryFrom<u32>>(text: &str) -> Option<T> {
    let digits = text.trim().trim_start_matches("0x");
    u32::from_str_radix(digits, 16)
        .ok()
        .and_then(|v| T::try_from(v).ok())
}

/// `pci_0000_00_01_0` → 0000:00:01.0; anything else (`computer`) → None.
fn address_of_name(name: &str) -> Option<PciAddress> {
    let rest = name.strip_prefix("pci_")?;
    let parts: Vec<&str> = rest.split('_').collect();
    let [domain, bus, slot, function] = parts[..] else {
        return None;
    };
    format!("{domain}:{bus}:{slot}.{function}").parse().ok()
}

/// One PCI function from its nodedev XML; `None` for other kinds of device.
fn device(xml: &str) -> Result<Option<PciDevice>, NodedevError> {
    let device: Device = quick_xml::de::from_str(xml).map_err(|e| NodedevError(e.to_string()))?;
    let Some(cap) = device.capabilities.iter().find(|c| c.kind == "pci") else {
        return Ok(None);
    };
    let missing = |what: &str| NodedevError(format!("<{what}>"));
    // Through the strict parser: a slot above 31 or a function above 7 is
    // refused, as from any other source.
    let address: PciAddress = format!(
        "{:04x}:{:02x}:{:02x}.{:x}",
        cap.domain.ok_or_else(|| missing("domain"))?,
        cap.bus.ok_or_else(|| missing("bus"))?,
        cap.slot.ok_or_else(|| missing("slot"))?,
        cap.function.ok_or_else(|| missing("function"))?
    )
    .parse()
    .map_err(|e: crate::pci::AddressError| NodedevError(e.to_string()))?;
    let vendor = cap.vendor.as_ref().ok_or_else(|| missing("vendor"))?;
    let product = cap.product.as_ref().ok_or_else(|| missing("product"))?;
    let class = PciClass(
        cap.class
            .as_deref()
            .and_then(hex::<u32>)
            .ok_or_else(|| missing("class"))?,
    );
    let named = |n: &Named| n.name.clone().filter(|s| !s.trim().is_empty());
    let mut d = PciDevice::unknown(
        address,
        hex(&vendor.id).ok_or_else(|| missing("vendor id"))?,
        hex(&product.id).ok_or_else(|| missing("product id"))?,
        class,
    );
    d.vendor_name = named(vendor);
    d.device_name = named(product);
    d.driver = device.driver.and_then(|dr| dr.name);
    d.iommu_group = cap.iommu_group.as_ref().map(|g| g.number);
    d.bridge = class.is_pci_bridge();
    d.parent = device.parent.as_deref().and_then(address_of_name);
    Ok(Some(d))
}

/// The topology of a host from the nodedev XML of its devices (any kind:
/// those that are not PCI functions are skipped).
pub fn topology(xmls: &[String], uri: &str) -> Result<Topology, NodedevError> {
    let mut devices = Vec::new();
    for xml in xmls {
        if let Some(d) = device(xml)? {
            devices.push(d);
        }
    }
    Ok(topology::from_devices(devices, Some(uri.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPU: &str = "<device>
  <name>pci_0000_01_00_0</name>
  <path>/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0</path>
  <parent>pci_0000_00_01_0</parent>
  <driver><name>nouveau</name></driver>
  <capability type='pci'>
    <class>0x030000</class>
    <domain>0</domain><bus>1</bus><slot>0</slot><function>0</function>
    <product id='0x1402'>GM206 [GeForce GTX 950]</product>
    <vendor id='0x10de'>NVIDIA Corporation</vendor>
    <iommuGroup number='13'>
      <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
      <address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/>
    </iommuGroup>
    <pci-express><link validity='cap' port='0' speed='8' width='16'/></pci-express>
  </capability>
</device>";

    #[test]
    fn a_gpu_reads_with_everything_libvirt_knows() {
        let d = device(GPU).unwrap().unwrap();
        assert_eq!(d.address.to_string(), "0000:01:00.0");
        assert_eq!((d.vendor_id, d.device_id), (0x10de, 0x1402));
        assert_eq!(d.class.0, 0x030000);
        assert_eq!(d.device_name.as_deref(), Some("GM206 [GeForce GTX 950]"));
        assert_eq!(d.driver.as_deref(), Some("nouveau"));
        assert_eq!(d.iommu_group, Some(13));
        assert_eq!(
            d.parent.map(|p| p.to_string()).as_deref(),
            Some("0000:00:01.0")
        );
        assert!(!d.bridge);
    }

    #[test]
    fn other_devices_are_skipped_and_bad_ones_named() {
        let net = "<device><name>net_eth0</name><parent>computer</parent>\
                   <capability type='net'><interface>eth0</interface></capability></device>";
        assert!(device(net).unwrap().is_none());
        assert!(device("<device>").is_err());
        let no_bus = GPU.replace("<bus>1</bus>", "");
        assert_eq!(device(&no_bus).unwrap_err(), NodedevError("<bus>".into()));
        let bad_id = GPU.replace("0x10de", "0xzz");
        assert!(device(&bad_id).is_err());
        let bad_slot = GPU.replace("<slot>0</slot>", "<slot>32</slot>");
        assert!(device(&bad_slot).is_err());
        let bad_function = GPU.replace("<function>0</function>", "<function>9</function>");
        assert!(device(&bad_function).is_err());
        assert_eq!(address_of_name("computer"), None);
        assert_eq!(
            address_of_name("pci_0000_00_1f_3").unwrap().to_string(),
            "0000:00:1f.3"
        );
        assert_eq!(address_of_name("pci_0000_00_1f"), None);
    }
}
