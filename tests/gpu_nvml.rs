//! The real NVML code path without a GPU: a fake `libnvidia-ml.so` built from
//! `tests/fake_nvml/fake_nvml.c` at test time, loaded by nvml-wrapper through its library-path
//! option, behind `gantry gpus --nvml-lib` (the user-facing check) and behind the library's
//! `NvmlProbe` (in a child process: the fake's GPUs come from the environment, which one
//! process should not change while other tests run).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use gantry::gpu::{class_for, GpuProbe, NvmlProbe};
use serde_json::{json, Value};

/// Four GPUs of two classes, listed out of bus order. Fields: uuid|name|memory|pciBusId|
/// memoryUsed|gpuUtil|tempC|powerMw|numaNode (empty: not supported).
const FOUR_GPUS: &str = "\
GPU-a40-0002|NVIDIA A40|46068Mi|0000:CA:00.0|1Gi|37|45|120000|1;\
GPU-a100-0001|NVIDIA A100-SXM4-80GB|80Gi|0000:17:00.0|0|0|31|61000|0;\
GPU-a40-0001|NVIDIA A40|46068Mi|0000:b1:00.0|||||;\
GPU-a100-0002|NVIDIA A100-SXM4-80GB|80Gi|0000:3b:00.0|40Gi|100|70|398000|0";

/// The fake library, built once per test run: (current, an old driver's without
/// `nvmlDeviceGetMemoryInfo_v2`). Built under Cargo's temp dir for integration tests, each
/// file compiled under a name of its own and renamed into place, so concurrent runs never
/// load a half-written library.
fn fake_libraries() -> &'static (PathBuf, PathBuf) {
    static LIBS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    LIBS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fake-nvml");
        std::fs::create_dir_all(&dir).expect("create the fake NVML's folder");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_nvml/fake_nvml.c");
        let build = |name: &str, defines: &[&str]| {
            let out = dir.join(name);
            let partial = dir.join(format!("{name}.{}", std::process::id()));
            let status = Command::new("cc")
                .args(["-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-o"])
                .arg(&partial)
                .args(defines)
                .arg(&source)
                .status()
                .expect("run cc (a C compiler is needed to build the fake NVML)");
            assert!(status.success(), "building {name} failed");
            std::fs::rename(&partial, &out).expect("move the fake NVML into place");
            out
        };
        (
            build("libnvidia-ml.so.1", &[]),
            build("libnvidia-ml-old.so.1", &["-DFAKE_NVML_NO_MEMORY_V2"]),
        )
    })
}

fn fake_nvml() -> &'static Path {
    &fake_libraries().0
}

/// `gantry gpus ARGS` with the fake's environment.
fn gantry_gpus(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
    command.arg("gpus").args(args);
    for key in [
        "FAKE_NVML_GPUS",
        "FAKE_NVML_INIT_ERROR",
        "FAKE_NVML_LOST_INDEX",
        "FAKE_NVML_DRIVER",
        "FAKE_NVML_LOG",
        "RUST_LOG",
    ] {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    command.output().expect("run gantry")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

/// The NUMA node the probe reports: Linux's for the bus id where this machine has such a
/// device (the probe prefers it), else the fake's.
fn expected_numa(bus_id: &str, fake: Option<i64>) -> Option<i64> {
    std::fs::read_to_string(format!("/sys/bus/pci/devices/{bus_id}/numa_node"))
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .or(fake)
}

fn with_numa(mut gpu: Value, fake: Option<i64>) -> Value {
    let bus_id = gpu["pciBusId"].as_str().unwrap().to_string();
    if let Some(n) = expected_numa(&bus_id, fake) {
        gpu["numaNode"] = json!(n);
    }
    gpu
}

fn four_gpus_expected() -> Vec<Value> {
    const GIB: i64 = 1 << 30;
    vec![
        with_numa(
            json!({
                "uuid": "GPU-a100-0001", "name": "NVIDIA A100-SXM4-80GB", "class": "A100_NVLINK_80GB",
                "memoryBytes": 80 * GIB, "memoryUsedBytes": 0, "pciBusId": "0000:17:00.0",
                "utilizationPercent": 0, "temperatureCelsius": 31, "powerMilliwatts": 61000,
            }),
            Some(0),
        ),
        with_numa(
            json!({
                "uuid": "GPU-a100-0002", "name": "NVIDIA A100-SXM4-80GB", "class": "A100_NVLINK_80GB",
                "memoryBytes": 80 * GIB, "memoryUsedBytes": 40 * GIB, "pciBusId": "0000:3b:00.0",
                "utilizationPercent": 100, "temperatureCelsius": 70, "powerMilliwatts": 398000,
            }),
            Some(0),
        ),
        // The fake supports nothing optional for this one: those fields are absent.
        with_numa(
            json!({
                "uuid": "GPU-a40-0001", "name": "NVIDIA A40", "class": "A40",
                "memoryBytes": 46068i64 << 20, "memoryUsedBytes": 0, "pciBusId": "0000:b1:00.0",
            }),
            None,
        ),
        with_numa(
            json!({
                "uuid": "GPU-a40-0002", "name": "NVIDIA A40", "class": "A40",
                "memoryBytes": 46068i64 << 20, "memoryUsedBytes": GIB, "pciBusId": "0000:ca:00.0",
                "utilizationPercent": 37, "temperatureCelsius": 45, "powerMilliwatts": 120000,
            }),
            Some(1),
        ),
    ]
}

#[test]
fn four_fake_gpus_of_two_classes_through_the_real_nvml_path() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let lib = fake_nvml().to_str().unwrap();
    let out = gantry_gpus(
        &["--nvml-lib", lib, "-o", "json"],
        &[
            ("FAKE_NVML_GPUS", FOUR_GPUS),
            ("FAKE_NVML_LOG", log.path().to_str().unwrap()),
        ],
    );
    let inventory = json_of(&out);
    assert_eq!(inventory["source"], json!(format!("nvml:{lib}")));
    assert_eq!(inventory["driverVersion"], json!("550.54.15"));
    // Sorted by PCI bus id, bus ids in Linux's form (NVML says `00000000:CA:00.0`).
    assert_eq!(inventory["gpus"], json!(four_gpus_expected()));
    assert_eq!(stderr(&out), "", "no warnings for a healthy machine");

    let calls = std::fs::read_to_string(log.path()).unwrap();
    let count = |call: &str| calls.lines().filter(|l| *l == call).count();
    assert_eq!(count("nvmlInit_v2"), 1, "{calls}");
    assert_eq!(
        count("nvmlShutdown"),
        1,
        "NVML is shut down when the probe is dropped"
    );
    assert_eq!(count("nvmlDeviceGetMemoryInfo_v2"), 4, "{calls}");
    assert_eq!(count("nvmlDeviceGetMemoryInfo"), 0, "{calls}");
}

#[test]
fn the_table_shows_uuid_name_class_memory_utilisation_and_bus_id() {
    let out = gantry_gpus(
        &["--nvml-lib", fake_nvml().to_str().unwrap()],
        &[
            ("FAKE_NVML_GPUS", FOUR_GPUS),
            ("FAKE_NVML_DRIVER", "535.183.01"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "UUID",
            "NAME",
            "CLASS",
            "MEMORY",
            "USED",
            "UTIL",
            "TEMP",
            "PCI-BUS-ID",
            "NUMA"
        ]
    );
    for (line, cells) in lines[1..].iter().zip([
        [
            "GPU-a100-0001",
            "NVIDIA A100-SXM4-80GB",
            "A100_NVLINK_80GB",
            "80Gi",
            "0%",
            "31C",
            "0000:17:00.0",
        ],
        [
            "GPU-a100-0002",
            "NVIDIA A100-SXM4-80GB",
            "A100_NVLINK_80GB",
            "80Gi",
            "100%",
            "70C",
            "0000:3b:00.0",
        ],
        [
            "GPU-a40-0001",
            "NVIDIA A40",
            "A40",
            "46068Mi",
            "-",
            "-",
            "0000:b1:00.0",
        ],
        [
            "GPU-a40-0002",
            "NVIDIA A40",
            "A40",
            "46068Mi",
            "37%",
            "45C",
            "0000:ca:00.0",
        ],
    ]) {
        assert!(line.starts_with(cells[0]), "{line}");
        for cell in cells {
            assert!(
                line.contains(&format!(" {cell} ")) || line.starts_with(cell),
                "{cell} in {line}"
            );
        }
    }
    assert_eq!(
        stderr(&out),
        format!(
            "source: nvml:{}, driver 535.183.01\n",
            fake_nvml().display()
        )
    );

    let yaml = gantry_gpus(
        &["--nvml-lib", fake_nvml().to_str().unwrap(), "-o", "yaml"],
        &[("FAKE_NVML_GPUS", FOUR_GPUS)],
    );
    assert!(yaml.status.success(), "{yaml:?}");
    let parsed: Value = serde_yaml::from_slice(&yaml.stdout).unwrap();
    assert_eq!(parsed["gpus"], json!(four_gpus_expected()));
}

#[test]
fn class_overrides_win() {
    let out = gantry_gpus(
        &[
            "--nvml-lib",
            fake_nvml().to_str().unwrap(),
            "-o",
            "json",
            "--class",
            "NVIDIA A40=RTX_A6000",
        ],
        &[("FAKE_NVML_GPUS", FOUR_GPUS)],
    );
    let classes: Vec<String> = json_of(&out)["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["class"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        classes,
        [
            "A100_NVLINK_80GB",
            "A100_NVLINK_80GB",
            "RTX_A6000",
            "RTX_A6000"
        ]
    );
}

#[test]
fn a_gpu_that_fell_off_the_bus_is_left_out_with_a_warning() {
    let out = gantry_gpus(
        &["--nvml-lib", fake_nvml().to_str().unwrap(), "-o", "json"],
        &[("FAKE_NVML_GPUS", FOUR_GPUS), ("FAKE_NVML_LOST_INDEX", "1")],
    );
    let uuids: Vec<String> = json_of(&out)["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["uuid"].as_str().unwrap().to_string())
        .collect();
    // Index 1 of FOUR_GPUS is GPU-a100-0001.
    assert_eq!(uuids, ["GPU-a100-0002", "GPU-a40-0001", "GPU-a40-0002"]);
    let warnings = stderr(&out);
    assert_eq!(warnings.lines().count(), 1, "{warnings}");
    assert!(
        warnings.contains("GPU at NVML index 1 left out: device fell off the bus"),
        "{warnings}"
    );
}

#[test]
fn drivers_before_r510_report_memory_through_the_first_memory_call() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let old = fake_libraries().1.to_str().unwrap();
    let out = gantry_gpus(
        &["--nvml-lib", old, "-o", "json"],
        &[
            ("FAKE_NVML_GPUS", FOUR_GPUS),
            ("FAKE_NVML_LOG", log.path().to_str().unwrap()),
        ],
    );
    let inventory = json_of(&out);
    let memory: Vec<(i64, i64)> = inventory["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["memoryBytes"].as_i64().unwrap(),
                g["memoryUsedBytes"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        memory,
        [
            (80 << 30, 0),
            (80 << 30, 40 << 30),
            (46068 << 20, 0),
            (46068 << 20, 1 << 30)
        ]
    );
    let calls = std::fs::read_to_string(log.path()).unwrap();
    assert_eq!(
        calls
            .lines()
            .filter(|l| *l == "nvmlDeviceGetMemoryInfo")
            .count(),
        4
    );
    assert_eq!(stderr(&out), "");
}

/// The one line of the probe's warning, and the reason in the inventory.
fn assert_no_gpus(out: &Output, reason_prefix: &str) {
    let inventory = json_of(out);
    assert_eq!(inventory["gpus"], json!([]));
    let source = inventory["source"].as_str().unwrap();
    assert!(
        source.starts_with(&format!("none: {reason_prefix}")),
        "{source}"
    );
    let warnings = stderr(out);
    assert_eq!(warnings.lines().count(), 1, "one warning: {warnings}");
    assert!(warnings.contains("WARN"), "{warnings}");
    assert!(
        warnings.contains(source.strip_prefix("none: ").unwrap()),
        "{warnings}"
    );
}

#[test]
fn a_missing_library_is_one_warning_and_no_gpus() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("libnvidia-ml.so.1");
    let out = gantry_gpus(
        &["--nvml-lib", missing.to_str().unwrap(), "-o", "json"],
        &[],
    );
    assert_no_gpus(
        &out,
        &format!("cannot load the NVML library {}: ", missing.display()),
    );
    assert!(
        stderr(&out).contains("No such file or directory"),
        "{}",
        stderr(&out)
    );

    // The table form says the same once, and the command still succeeds: a machine without
    // GPUs is a normal machine.
    let out = gantry_gpus(&["--nvml-lib", missing.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "");
    let text = stderr(&out);
    assert_eq!(
        text.lines().filter(|l| l.contains("WARN")).count(),
        1,
        "{text}"
    );
    assert!(text.ends_with("No GPUs found.\n"), "{text}");
}

#[test]
fn a_driver_that_is_not_loaded_is_one_warning_and_no_gpus() {
    let out = gantry_gpus(
        &["--nvml-lib", fake_nvml().to_str().unwrap(), "-o", "json"],
        &[("FAKE_NVML_GPUS", FOUR_GPUS), ("FAKE_NVML_INIT_ERROR", "9")],
    );
    assert_no_gpus(&out, "the NVIDIA driver is not loaded");
}

#[test]
fn a_library_that_is_not_nvml_is_one_warning_and_no_gpus() {
    // Any shared library without nvmlInit_v2, e.g. a wrong --nvml-lib.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("empty.c");
    std::fs::write(&source, "int not_nvml(void) { return 0; }\n").unwrap();
    let lib = dir.path().join("libempty.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success());
    let out = gantry_gpus(&["--nvml-lib", lib.to_str().unwrap(), "-o", "json"], &[]);
    assert_no_gpus(
        &out,
        &format!("{} is not a usable NVML library", lib.display()),
    );
}

#[test]
fn a_gpus_file_is_an_inventory_without_nvml() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpus.yaml");
    std::fs::write(
        &path,
        "gpus:\n\
         - uuid: GPU-5f1e2d3c-0000-4000-8000-000000000002\n  name: NVIDIA RTX A6000\n  memory: 48Gi\n  pciBusId: \"0000:b1:00.0\"\n\
         - uuid: GPU-5f1e2d3c-0000-4000-8000-000000000001\n  name: Quadro RTX 5000\n  memory: 16Gi\n  pciBusId: \"0000:3b:00.0\"\n  numaNode: 0\n",
    )
    .unwrap();
    let out = gantry_gpus(&["--gpus-file", path.to_str().unwrap(), "-o", "json"], &[]);
    assert_eq!(
        json_of(&out),
        json!({
            "source": format!("file:{}", path.display()),
            "gpus": [
                {"uuid": "GPU-5f1e2d3c-0000-4000-8000-000000000001", "name": "Quadro RTX 5000",
                 "class": "Quadro_RTX_5000", "memoryBytes": 16i64 << 30, "pciBusId": "0000:3b:00.0",
                 "numaNode": 0},
                {"uuid": "GPU-5f1e2d3c-0000-4000-8000-000000000002", "name": "NVIDIA RTX A6000",
                 "class": "RTX_A6000", "memoryBytes": 48i64 << 30, "pciBusId": "0000:b1:00.0"},
            ]
        })
    );

    std::fs::write(
        &path,
        "gpus:\n- uuid: GPU-1\n  name: NVIDIA A40\n  memory: 48Gi\n- uuid: GPU-1\n  name: NVIDIA A40\n  memory: 48Gi\n",
    )
    .unwrap();
    let out = gantry_gpus(&["--gpus-file", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr(&out),
        format!(
            "{}:5:3: error: gpus[1].uuid: Duplicate value: \"GPU-1\" (also gpus[0].uuid)\n",
            path.display()
        )
    );

    let out = gantry_gpus(
        &["--gpus-file", path.to_str().unwrap(), "--nvml-lib", "/x.so"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

/// The library API itself: `NvmlProbe` behind `GpuProbe`, polled more than once, as the
/// daemon's thread will. Runs in a child process of this test binary (the fake reads its GPUs
/// from the environment at init).
#[test]
fn the_probe_polls_one_nvml_session() {
    const CHILD: &str = "GANTRY_TEST_PROBE_CHILD";
    if let Ok(lib) = std::env::var(CHILD) {
        let probe: Box<dyn GpuProbe> = Box::new(NvmlProbe::new(Some(Path::new(&lib))));
        let first = probe.snapshot();
        let second = probe.snapshot();
        assert_eq!(first, second);
        let got: Vec<(String, String)> = first
            .gpus
            .iter()
            .map(|g| {
                (
                    g.uuid.clone(),
                    class_for(&g.name, g.memory_bytes, &BTreeMap::new()),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("GPU-a100-0001".to_string(), "A100_NVLINK_80GB".to_string()),
                ("GPU-a100-0002".into(), "A100_NVLINK_80GB".into()),
                ("GPU-a40-0001".into(), "A40".into()),
                ("GPU-a40-0002".into(), "A40".into()),
            ]
        );
        assert_eq!(first.source, format!("nvml:{lib}"));
        return;
    }
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "the_probe_polls_one_nvml_session", "--nocapture"])
        .env(CHILD, fake_nvml())
        .env("FAKE_NVML_GPUS", FOUR_GPUS)
        .env("FAKE_NVML_LOG", log.path())
        .env_remove("FAKE_NVML_INIT_ERROR")
        .env_remove("FAKE_NVML_LOST_INDEX")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("1 passed"), "{}", stdout(&out));
    let calls = std::fs::read_to_string(log.path()).unwrap();
    let count = |call: &str| calls.lines().filter(|l| *l == call).count();
    assert_eq!(count("nvmlInit_v2"), 1, "one NVML session for every poll");
    assert_eq!(
        count("nvmlDeviceGetCount_v2"),
        2,
        "each poll walks the devices"
    );
    assert_eq!(count("nvmlShutdown"), 1);
}
