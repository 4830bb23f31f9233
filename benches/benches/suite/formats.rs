//! The formats rows (`ENDURO_BENCH_ONLY=formats`): the 1 MiB map of strings of the file
//! rows ([`values::map_of_strings`], one key touched per swap), in a plain-mode file atom
//! with each codec, against the same atom with JSON in the same run: the swap rate, and the
//! size of the file the map makes.
//!
//! The swap rates come from alternating rounds (each codec in turn, [`Timing::rounds`]
//! rounds of [`Timing::each`]), so that every codec sees the same machine state.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use enduro::{Atom, Cbor, Codec, FileAtom, Json, MessagePack, Postcard, Ron, Toml};
use enduro_benches::report::{Measured, Row, Unit};
use enduro_benches::{scratch_dir, values};

use crate::Timing;

/// The map's size in compact JSON.
const ONE_MIB: usize = 1 << 20;

type Map = BTreeMap<String, String>;

/// One contender: a codec's name and a file atom holding the map with it.
struct Contender {
    name: &'static str,
    atom: Atom<Map>,
    file: std::path::PathBuf,
    swaps: u64,
    secs: f64,
}

fn open<C: Codec>(dir: &Path, codec: C, map: &Map) -> enduro::Result<Contender> {
    let name = codec.name();
    let file = dir.join(format!("map.{}", name.to_lowercase()));
    let atom = FileAtom::builder(&file).codec(codec).open(map.clone())?;
    Ok(Contender {
        name,
        atom,
        file,
        swaps: 0,
        secs: 0.0,
    })
}

/// The rows: swap rate and file size per format, as ratios against JSON.
pub fn rows(timing: Timing) -> Vec<Row> {
    match measure(timing) {
        Ok(rows) => rows,
        Err(e) => vec![Row::not_run(
            "file_1mib_formats",
            "file, ~1 MiB map, every format",
            "JSON",
            Unit::OpsPerSec,
            None,
            format!("cannot run: {e}"),
        )],
    }
}

fn measure(timing: Timing) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let dir = scratch_dir("formats")?;
    let map = values::map_of_strings(ONE_MIB);
    let mut contenders = vec![
        open(dir.path(), Json::default(), &map)?,
        open(dir.path(), Toml::default(), &map)?,
        open(dir.path(), Ron::default(), &map)?,
        open(dir.path(), Cbor, &map)?,
        open(dir.path(), MessagePack, &map)?,
        open(dir.path(), Postcard, &map)?,
    ];
    let mut i = 0;
    for _ in 0..timing.rounds {
        for c in &mut contenders {
            let start = Instant::now();
            while start.elapsed() < timing.each {
                i += 1;
                c.atom.swap(|m| {
                    let mut m = m.clone();
                    values::touch(&mut m, i);
                    m
                })?;
                c.swaps += 1;
            }
            c.secs += start.elapsed().as_secs_f64();
        }
    }
    let size = |c: &Contender| -> std::io::Result<f64> {
        Ok(std::fs::metadata(&c.file)?.len() as f64 / (1024.0 * 1024.0))
    };
    let json = &contenders[0];
    let (json_rate, json_size) = (json.swaps as f64 / json.secs, size(json)?);
    let mut rows = Vec::new();
    for c in &contenders[1..] {
        let id = c.name.to_lowercase();
        rows.push(Row::measured(
            &format!("file_1mib_format_{id}_swap"),
            &format!(
                "file, ~1 MiB map (of compact JSON), 1 thread: swap, {}",
                c.name
            ),
            "the same atom with JSON",
            Unit::OpsPerSec,
            Measured {
                enduro: c.swaps as f64 / c.secs,
                baseline: json_rate,
            },
            None,
        ));
        rows.push(Row::measured(
            &format!("file_1mib_format_{id}_size"),
            &format!("file, ~1 MiB map (of compact JSON): file size, {}", c.name),
            "the same map as JSON",
            Unit::MiB,
            Measured {
                enduro: size(c)?,
                baseline: json_size,
            },
            None,
        ));
    }
    Ok(rows)
}
