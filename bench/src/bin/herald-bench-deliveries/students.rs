//! The benchmark's students: `--students` rows of the CSV import, with distinct US phone
//! numbers and spread over 50 IANA zones so planning has to work out many local clocks.

use std::fmt::Write as _;

pub use herald_bench::ZONES;

/// Rows per CSV import request (the endpoint's limit).
pub const IMPORT_ROWS: usize = 10_000;
/// Area codes for the students' phones: `+1 <area> 555 <4 digits>`, 10,000 per code.
const AREAS: [u16; 10] = [201, 202, 212, 213, 305, 312, 415, 617, 646, 718];
/// Most students the phone numbers above allow.
pub const MAX: usize = AREAS.len() * 10_000;

/// The import CSV (with its header) of students `from..to`: student `n` is `Student <n>`,
/// an SMS contact at `+1 <area> 555 <n mod 10,000>` in zone `n mod 50`.
pub fn csv(from: usize, to: usize) -> Result<String, std::fmt::Error> {
    let mut csv = String::from("name,phone,channel,timezone\n");
    for n in from..to {
        let area = AREAS[n / 10_000];
        let zone = ZONES[n % ZONES.len()];
        writeln!(csv, "Student {n},+1{area}555{:04},sms,{zone}", n % 10_000)?;
    }
    Ok(csv)
}
