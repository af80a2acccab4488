//! The window on a generated host with 2,048 SR-IOV functions: how long until
//! the list shows, and how long the main loop is blocked (the longest single
//! main-loop iteration) while typing a search, toggling "Graphics only",
//! switching views and scrolling from top to bottom. Under Xvfb.
//!
//! `cargo bench --bench gui [-- FUNCTIONS]`

#[path = "../tests/gui_support/mod.rs"]
mod gui_support;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use relm4::gtk;
use relm4::gtk::glib;
use relm4::gtk::prelude::*;

use gui_support::*;
use traspaso::fixture::HostSpec;
use traspaso::ui::app::find_widget;
use traspaso::ui::Source;

const INNER: &str = "TRASPASO_GUI_BENCH";

fn main() -> ExitCode {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too,
    // as a quick smoke run on a small host.
    let bench = std::env::args().any(|a| a == "--bench");
    let functions: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if bench { 2048 } else { 64 });
    if std::env::var_os(INNER).is_none() {
        let me = std::env::current_exe().expect("own path");
        let status = headless(&me)
            .env(INNER, "1")
            .arg(functions.to_string())
            .status()
            .expect("xvfb-run and dbus-run-session are needed");
        return if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    init_gtk();
    run(functions);
    ExitCode::SUCCESS
}

/// The longest main-loop iteration while `done` was not yet true.
struct Stalls {
    longest: Duration,
}

fn run_until(timeout: Duration, done: impl Fn() -> bool) -> Stalls {
    let context = glib::MainContext::default();
    let start = Instant::now();
    let mut longest = Duration::ZERO;
    while !done() && start.elapsed() < timeout {
        let t = Instant::now();
        if context.iteration(false) {
            longest = longest.max(t.elapsed());
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Stalls { longest }
}

fn ms(d: Duration) -> String {
    format!("{:7.1} ms", d.as_secs_f64() * 1000.0)
}

fn peak_memory_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn run(functions: usize) {
    let dir = tempfile::tempdir().unwrap();
    HostSpec::sriov(functions).write(dir.path()).unwrap();

    let opened = Instant::now();
    let w = Window::open(Source::Captured(dir.path().to_owned()));
    let load = run_until(Duration::from_secs(60), || {
        w.page() == "browse" && !w.nodes().is_empty()
    });
    let rows = w.nodes().len();
    println!(
        "host: {functions} functions; groups view: {rows} rows; peak memory so far {} MiB",
        peak_memory_kib() / 1024
    );
    println!(
        "open → list shown (scan included)   {}   longest main-loop stall {}",
        ms(opened.elapsed()),
        ms(load.longest)
    );
    // Let the first frames settle.
    run_until(Duration::from_millis(300), || false);

    // Typing a search, one key at a time, as a user would.
    let entry: gtk::SearchEntry = find_widget(&w.root(), &|x| x.widget_name() == "search-entry")
        .and_downcast()
        .unwrap();
    let mut typed = String::new();
    let mut worst = Duration::ZERO;
    let keys = Instant::now();
    for c in "virtual 0000:05".chars() {
        typed.push(c);
        entry.set_text(&typed);
        let s = run_until(Duration::from_millis(250), || false);
        worst = worst.max(s.longest);
    }
    let matched = w.nodes().len();
    println!(
        "search, 15 keystrokes (250 ms apart)  longest stall {}   ({matched} rows match; {} in all)",
        ms(worst),
        ms(keys.elapsed())
    );
    entry.set_text("");
    let cleared = run_until(Duration::from_secs(5), || w.nodes().len() == rows);
    println!(
        "clear the search                      longest stall {}",
        ms(cleared.longest)
    );

    // Graphics only, on and off.
    let window = w.window();
    let toggle = |on: bool| {
        window
            .lookup_action("graphics-only")
            .unwrap()
            .change_state(&on.to_variant());
    };
    let t = Instant::now();
    toggle(true);
    let sync = t.elapsed();
    let on = run_until(Duration::from_millis(200), || false);
    toggle(false);
    let off = run_until(Duration::from_millis(200), || false);
    println!(
        "graphics only on / off                longest stall {}",
        ms(sync.max(on.longest).max(off.longest))
    );

    // The PCI bus view and back.
    let mode = |m: &str| {
        window
            .lookup_action("view-mode")
            .unwrap()
            .change_state(&m.to_variant());
    };
    let t = Instant::now();
    mode("bus");
    let sync_bus = t.elapsed();
    let bus = run_until(Duration::from_millis(200), || false);
    let t = Instant::now();
    mode("groups");
    let sync_groups = t.elapsed();
    let groups = run_until(Duration::from_millis(200), || false);
    println!(
        "PCI bus view / groups view            longest stall {} / {}",
        ms(sync_bus.max(bus.longest)),
        ms(sync_groups.max(groups.longest))
    );

    // Scroll from top to bottom a page at a time, one frame per step.
    let scrolled: gtk::ScrolledWindow = w.list().parent().and_downcast().unwrap();
    let adjustment = scrolled.vadjustment();
    let clock = window.frame_clock().unwrap();
    let frames = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counter = frames.clone();
    let handler = clock.connect_after_paint(move |_| counter.set(counter.get() + 1));
    let mut steps = 0;
    let mut worst = Duration::ZERO;
    let mut frame_times = Vec::new();
    let start = Instant::now();
    while adjustment.value() + adjustment.page_size() < adjustment.upper() {
        let before = frames.get();
        let t = Instant::now();
        adjustment.set_value(adjustment.value() + adjustment.page_size());
        let s = run_until(Duration::from_secs(2), || frames.get() > before);
        frame_times.push(t.elapsed());
        worst = worst.max(s.longest);
        steps += 1;
    }
    clock.disconnect(handler);
    frame_times.sort();
    let median = frame_times[frame_times.len() / 2];
    let p95 = frame_times[frame_times.len() * 95 / 100];
    println!(
        "scroll to the end: {steps} pages in {}   per page median {}  p95 {}  longest stall {}",
        ms(start.elapsed()),
        ms(median),
        ms(p95),
        ms(worst)
    );
    println!("peak memory {} MiB", peak_memory_kib() / 1024);
    w.close();
}
