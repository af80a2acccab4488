//! The device tree: a `gtk::ListView` over a `gtk::TreeListModel`, in either
//! arrangement (IOMMU groups or PCI bus). The shape comes from
//! [`super::model::TreeShape`]; this file only builds rows.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use relm4::gtk::prelude::*;
use relm4::gtk::{gdk, gio, glib};
use relm4::{gtk, RelmWidgetExt};

use super::model::{self, Filter, NodeKind, TreeShape, ViewMode};
use crate::i18n::gettext;
use crate::pci::PciAddress;
use crate::topology::{Severity, Topology};

/// Above this many top-level rows the filter runs incrementally.
const INCREMENTAL_ABOVE: u32 = 512;

/// What is selected, stable across rescans (device indices are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    Group(u32),
    Device(PciAddress),
}

/// Everything a row needs to render itself, and what the filter lets through.
pub struct TreeContext {
    pub topology: Arc<Topology>,
    /// The whole tree: what the models hold.
    pub shape: TreeShape,
    /// The filtered tree: what shows. Replaced when the filter changes.
    pub filtered: RefCell<TreeShape>,
    pub mode: ViewMode,
    /// The filter of every level's model.
    filter: gtk::CustomFilter,
}

/// The item behind every row: the shared context and which node this is.
#[derive(Clone)]
pub struct Node {
    pub context: Rc<TreeContext>,
    pub kind: NodeKind,
}

impl Node {
    /// What this node stands for, independent of indices.
    pub fn selection(&self) -> Selection {
        match self.kind {
            NodeKind::Group(g) => Selection::Group(g),
            NodeKind::Device(i) => Selection::Device(self.context.topology.devices[i].address),
        }
    }

    /// The row's title and subtitle, as shown.
    pub fn texts(&self) -> (String, String) {
        let t = &self.context.topology;
        match self.kind {
            NodeKind::Group(g) => match t.group(g) {
                Some(group) => (model::group_title(group), model::group_verdict(t, group)),
                None => (String::new(), String::new()),
            },
            NodeKind::Device(i) => {
                let d = &t.devices[i];
                (model::device_title(d), model::device_subtitle(d))
            }
        }
    }
}

/// One level of the tree: every node of it, through the shared filter.
fn level(context: &Rc<TreeContext>, kinds: Vec<NodeKind>) -> gtk::FilterListModel {
    gtk::FilterListModel::new(Some(store(context, kinds)), Some(context.filter.clone()))
}

fn store(context: &Rc<TreeContext>, kinds: Vec<NodeKind>) -> gio::ListStore {
    let store = gio::ListStore::new::<glib::BoxedAnyObject>();
    let items: Vec<glib::BoxedAnyObject> = kinds
        .into_iter()
        .map(|kind| {
            glib::BoxedAnyObject::new(Node {
                context: context.clone(),
                kind,
            })
        })
        .collect();
    store.extend_from_slice(&items);
    store
}

/// The node of a row of the list, if any.
pub fn node_of(row: &glib::Object) -> Option<Node> {
    let row = row.downcast_ref::<gtk::TreeListRow>()?;
    let item = row.item()?.downcast::<glib::BoxedAnyObject>().ok()?;
    let node = item.borrow::<Node>().clone();
    Some(node)
}

/// The list widget with its models.
pub struct DeviceList {
    pub view: gtk::ListView,
    pub selection: gtk::SingleSelection,
    /// What the models are built from; kept while only the filter changes.
    context: RefCell<Option<Rc<TreeContext>>>,
    tree: RefCell<Option<gtk::TreeListModel>>,
    roots: RefCell<Option<gtk::FilterListModel>>,
    on_select: Rc<dyn Fn(Option<Selection>, bool)>,
    quiet: Rc<RefCell<bool>>,
}

impl DeviceList {
    /// A list that calls `on_select` whenever the selected row changes, with
    /// `true` when the user changed it (not a rebuild).
    pub fn new(on_select: impl Fn(Option<Selection>, bool) + 'static) -> Self {
        let selection = gtk::SingleSelection::new(None::<gio::ListModel>);
        selection.set_autoselect(false);
        selection.set_can_unselect(true);

        let factory = gtk::SignalListItemFactory::new();
        factory.connect_setup(|_, item| {
            let item = item.downcast_ref::<gtk::ListItem>().expect("a list item");
            item.set_child(Some(&row_widget()));
        });
        factory.connect_bind(|_, item| {
            let item = item.downcast_ref::<gtk::ListItem>().expect("a list item");
            bind_row(item);
        });

        let view = gtk::ListView::new(Some(selection.clone()), Some(factory));
        view.set_widget_name("device-list");
        view.add_css_class("navigation-sidebar");
        view.set_vexpand(true);
        super::set_accessible_label(&view, &gettext("Devices"));

        let on_select: Rc<dyn Fn(Option<Selection>, bool)> = Rc::new(on_select);
        let quiet = Rc::new(RefCell::new(false));
        {
            let on_select = on_select.clone();
            let quiet = quiet.clone();
            selection.connect_selected_item_notify(move |sel| {
                if *quiet.borrow() {
                    return;
                }
                let node = sel.selected_item().and_then(|o| node_of(&o));
                on_select(node.map(|n| n.selection()), true);
            });
        }

        // Right/plus opens a row, Left/minus closes it or goes to its parent:
        // the expander is not focusable, the row is.
        let keys = gtk::EventControllerKey::new();
        {
            let selection = selection.clone();
            let view = view.clone();
            keys.connect_key_pressed(move |_, key, _, _| {
                let Some(row) = selection
                    .selected_item()
                    .and_then(|o| o.downcast::<gtk::TreeListRow>().ok())
                else {
                    return glib::Propagation::Proceed;
                };
                match key {
                    gdk::Key::Right | gdk::Key::plus | gdk::Key::KP_Add if row.is_expandable() => {
                        row.set_expanded(true);
                        glib::Propagation::Stop
                    }
                    gdk::Key::Left | gdk::Key::minus | gdk::Key::KP_Subtract => {
                        if row.is_expanded() {
                            row.set_expanded(false);
                        } else if let Some(parent) = row.parent() {
                            let position = parent.position();
                            selection.set_selected(position);
                            let _ = view.activate_action(
                                "list.scroll-to-item",
                                Some(&position.to_variant()),
                            );
                        }
                        glib::Propagation::Stop
                    }
                    _ => glib::Propagation::Proceed,
                }
            });
        }
        view.add_controller(keys);

        DeviceList {
            view,
            selection,
            context: RefCell::new(None),
            tree: RefCell::new(None),
            roots: RefCell::new(None),
            on_select,
            quiet,
        }
    }

    /// Show a topology in a view mode through a filter, keeping the selection
    /// when it still shows. Returns the number of functions that match.
    ///
    /// A new filter on the same topology and mode only refilters the models:
    /// rows that stay keep their widgets (rebuilding costs a few hundred row
    /// binds, a visible stall on big hosts).
    pub fn show(&self, topology: Arc<Topology>, mode: ViewMode, filter: &Filter) -> usize {
        let previous = self.selected();
        let reuse = self
            .context
            .borrow()
            .as_ref()
            .filter(|c| Arc::ptr_eq(&c.topology, &topology) && c.mode == mode)
            .cloned();
        // Groups are small: open them all. The bus tree opens fully only when
        // searching, so a match is never hidden in a closed branch.
        let autoexpand = mode == ViewMode::Groups || !filter.is_empty();
        *self.quiet.borrow_mut() = true;
        match reuse {
            Some(context) => {
                *context.filtered.borrow_mut() = TreeShape::new(&context.topology, filter);
                let tree = self
                    .tree
                    .borrow()
                    .clone()
                    .expect("a model with the context");
                tree.set_autoexpand(autoexpand);
                context.filter.changed(gtk::FilterChange::Different);
            }
            None => {
                let tree = self.build(topology, mode, filter, autoexpand);
                self.selection.set_model(Some(&tree));
            }
        }
        let roots = self.roots.borrow().clone();
        match roots.filter(|r| r.pending() > 0) {
            // Filtering in batches: restore the selection once it is done.
            Some(roots) => {
                let handler: Rc<RefCell<Option<glib::SignalHandlerId>>> = Rc::default();
                let slot = handler.clone();
                let list = self.clone_parts();
                let id = roots.connect_pending_notify(move |roots| {
                    if roots.pending() == 0 {
                        list.restore(previous);
                        if let Some(id) = slot.borrow_mut().take() {
                            roots.disconnect(id);
                        }
                    }
                });
                *handler.borrow_mut() = Some(id);
            }
            None => self.clone_parts().restore(previous),
        }
        let matches = self
            .context
            .borrow()
            .as_ref()
            .map_or(0, |c| c.filtered.borrow().matches());
        matches
    }

    fn clone_parts(&self) -> Restorer {
        Restorer {
            view: self.view.clone(),
            selection: self.selection.clone(),
            on_select: self.on_select.clone(),
            quiet: self.quiet.clone(),
        }
    }

    fn build(
        &self,
        topology: Arc<Topology>,
        mode: ViewMode,
        filter: &Filter,
        autoexpand: bool,
    ) -> gtk::TreeListModel {
        let shape = TreeShape::new(&topology, &Filter::default());
        let filtered = TreeShape::new(&topology, filter);
        let custom = gtk::CustomFilter::new(|_| true);
        let context = Rc::new(TreeContext {
            topology,
            shape,
            filtered: RefCell::new(filtered),
            mode,
            filter: custom.clone(),
        });
        // The filter asks the context, which owns the filter: a weak link.
        let weak = Rc::downgrade(&context);
        custom.set_filter_func(move |item| {
            let Some(context) = weak.upgrade() else {
                return false;
            };
            let Some(item) = item.downcast_ref::<glib::BoxedAnyObject>() else {
                return false;
            };
            let kind = item.borrow::<Node>().kind;
            let visible = context.filtered.borrow().visible(context.mode, kind);
            visible
        });
        let roots = level(&context, context.shape.roots(mode));
        // Thousands of rows (SR-IOV hosts): filter in idle batches so typing
        // never blocks the main loop for long.
        roots.set_incremental(roots.model().map_or(0, |m| m.n_items()) > INCREMENTAL_ABOVE);
        let roots_model = roots.clone();
        let tree = gtk::TreeListModel::new(roots, false, autoexpand, move |item| {
            let item = item.downcast_ref::<glib::BoxedAnyObject>()?;
            let node = item.borrow::<Node>();
            let children = node.context.shape.children(node.context.mode, node.kind);
            if children.is_empty() {
                None
            } else {
                Some(level(&node.context, children).upcast())
            }
        });
        *self.context.borrow_mut() = Some(context);
        *self.tree.borrow_mut() = Some(tree.clone());
        *self.roots.borrow_mut() = Some(roots_model);
        tree
    }

    fn selected(&self) -> Option<Selection> {
        self.selection
            .selected_item()
            .and_then(|o| node_of(&o))
            .map(|n| n.selection())
    }

    fn position_of(&self, wanted: Selection) -> Option<u32> {
        position_in(&self.selection, wanted)
    }

    /// Select the row of this node if it shows; returns whether it did.
    pub fn select(&self, wanted: Selection) -> bool {
        let Some(position) = self.position_of(wanted) else {
            return false;
        };
        self.selection.set_selected(position);
        let _ = self
            .view
            .activate_action("list.scroll-to-item", Some(&position.to_variant()));
        true
    }

    /// Every row's node, top to bottom (for tests and screen readers' sake).
    pub fn nodes(&self) -> Vec<Node> {
        let Some(model) = self.selection.model() else {
            return Vec::new();
        };
        (0..model.n_items())
            .filter_map(|i| model.item(i).and_then(|o| node_of(&o)))
            .collect()
    }
}

/// What restoring the selection after a (possibly batched) filter needs.
struct Restorer {
    view: gtk::ListView,
    selection: gtk::SingleSelection,
    on_select: Rc<dyn Fn(Option<Selection>, bool)>,
    quiet: Rc<RefCell<bool>>,
}

impl Restorer {
    /// Select `previous` again if it shows, quietly, then report the selection.
    fn restore(&self, previous: Option<Selection>) {
        let position = previous
            .and_then(|p| position_in(&self.selection, p))
            .unwrap_or(gtk::INVALID_LIST_POSITION);
        *self.quiet.borrow_mut() = true;
        self.selection.set_selected(position);
        *self.quiet.borrow_mut() = false;
        let now = self
            .selection
            .selected_item()
            .and_then(|o| node_of(&o))
            .map(|n| n.selection());
        (self.on_select)(now, false);
        if position != gtk::INVALID_LIST_POSITION {
            let _ = self
                .view
                .activate_action("list.scroll-to-item", Some(&position.to_variant()));
        }
    }
}

/// The row of a node in the list, if it shows.
fn position_in(selection: &gtk::SingleSelection, wanted: Selection) -> Option<u32> {
    let model = selection.model()?;
    (0..model.n_items()).find(|&i| {
        model
            .item(i)
            .and_then(|o| node_of(&o))
            .is_some_and(|n| n.selection() == wanted)
    })
}

fn row_widget() -> gtk::TreeExpander {
    let icon = gtk::Image::new();
    // A small natural width, so long names ellipsize instead of widening the sidebar.
    let title = gtk::Label::builder()
        .xalign(0.0)
        .ellipsize(gtk::pango::EllipsizeMode::End)
        .max_width_chars(24)
        .css_classes(["heading"])
        .build();
    let subtitle = gtk::Label::builder()
        .xalign(0.0)
        .ellipsize(gtk::pango::EllipsizeMode::End)
        .max_width_chars(24)
        .css_classes(["caption", "dim-label"])
        .build();
    // Badges go on a line of their own: beside the name they would squeeze it.
    let badges = gtk::Box::new(gtk::Orientation::Horizontal, 4);
    badges.set_margin_top(2);
    let labels = gtk::Box::new(gtk::Orientation::Vertical, 2);
    labels.set_hexpand(true);
    labels.append(&title);
    labels.append(&subtitle);
    labels.append(&badges);
    let row = gtk::Box::new(gtk::Orientation::Horizontal, 10);
    row.set_margin_all(4);
    row.append(&icon);
    row.append(&labels);
    let expander = gtk::TreeExpander::new();
    expander.set_child(Some(&row));
    expander
}

fn bind_row(item: &gtk::ListItem) {
    let Some(expander) = item.child().and_downcast::<gtk::TreeExpander>() else {
        return;
    };
    let Some(list_row) = item.item().and_downcast::<gtk::TreeListRow>() else {
        return;
    };
    expander.set_list_row(Some(&list_row));
    let Some(node) = node_of(list_row.upcast_ref()) else {
        return;
    };
    let Some(row) = expander.child().and_downcast::<gtk::Box>() else {
        return;
    };
    let icon = row.first_child().and_downcast::<gtk::Image>();
    let labels = icon.as_ref().and_then(|w| w.next_sibling());
    let title = labels
        .as_ref()
        .and_then(|w| w.first_child())
        .and_downcast::<gtk::Label>();
    let subtitle = title
        .as_ref()
        .and_then(|w| w.next_sibling())
        .and_downcast::<gtk::Label>();
    let badges = subtitle
        .as_ref()
        .and_then(|w| w.next_sibling())
        .and_downcast::<gtk::Box>();
    let (Some(icon), Some(badges), Some(title), Some(subtitle)) = (icon, badges, title, subtitle)
    else {
        return;
    };

    let (title_text, subtitle_text) = node.texts();
    title.set_text(&title_text);
    subtitle.set_text(&subtitle_text);
    while let Some(child) = badges.first_child() {
        badges.remove(&child);
    }
    badges.set_visible(false);
    let topology = &node.context.topology;
    match node.kind {
        NodeKind::Group(g) => {
            let shared = topology.group(g).is_some_and(|g| g.shared);
            icon.set_icon_name(Some(if shared {
                "dialog-warning-symbolic"
            } else {
                "emblem-ok-symbolic"
            }));
            icon.set_css_classes(if shared { &["warning"] } else { &["success"] });
        }
        NodeKind::Device(i) => {
            let device = &topology.devices[i];
            icon.set_icon_name(Some(model::class_icon(device)));
            icon.set_css_classes(&[]);
            for badge in model::badges(topology, &device.address) {
                let label = gtk::Label::new(Some(&badge.label));
                label.add_css_class("badge");
                label.add_css_class(match badge.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Info => "accent",
                });
                badges.append(&label);
                badges.set_visible(true);
            }
        }
    }
}
