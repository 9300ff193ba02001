//! Unix-second helpers for the few calendar facts the gate needs (UTC days and months), so the
//! ledger stores plain integers on both engines and no date crate is needed.

pub const DAY: i64 = 86_400;

/// `YYYY-MM-DD` for a Unix time, as shown to people in messages.
pub fn date(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM` UTC, for listings.
pub fn date_time(unix: i64) -> String {
    let secs = unix.rem_euclid(DAY);
    format!("{} {:02}:{:02}", date(unix), secs / 3600, secs % 3600 / 60)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC), for machines.
pub fn rfc3339(unix: i64) -> String {
    let secs = unix.rem_euclid(DAY);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        date(unix),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Midnight UTC starting the given `YYYY-MM-DD`.
pub fn parse_date(input: &str) -> Option<i64> {
    let mut parts = input.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) * DAY)
}

pub fn day_start(unix: i64) -> i64 {
    unix.div_euclid(DAY) * DAY
}

pub fn month_start(unix: i64) -> i64 {
    let (y, m, _) = civil_from_days(unix.div_euclid(DAY));
    days_from_civil(y, m, 1) * DAY
}

pub fn next_month_start(unix: i64) -> i64 {
    let (y, m, _) = civil_from_days(unix.div_euclid(DAY));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m, 1) * DAY
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_match_known_instants() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_795_996_800), "2026-11-30");
        assert_eq!(parse_date("2026-11-30"), Some(1_795_996_800));
        assert_eq!(
            parse_date("2024-02-29").map(date),
            Some("2024-02-29".into())
        );
        assert_eq!(parse_date("2025-02-29"), None);
        assert_eq!(parse_date("2025-13-01"), None);
        assert_eq!(parse_date("soon"), None);
        assert_eq!(date_time(1_795_996_800 + 3_723), "2026-11-30 01:02");
    }

    #[test]
    fn month_boundaries_roll_over_the_year() {
        let dec_15 = parse_date("2026-12-15").unwrap() + 3_600;
        assert_eq!(date(month_start(dec_15)), "2026-12-01");
        assert_eq!(date(next_month_start(dec_15)), "2027-01-01");
        assert_eq!(date(day_start(dec_15)), "2026-12-15");
    }
}
