//! The kernel's "cpulist" format (`Documentation/admin-guide/cputopology.rst`): comma-separated
//! ids and inclusive ranges such as `0-3,8,10-11`, optionally with a stride `0-15:2/4` (the first
//! 2 of every group of 4). Used for CPU and node lists alike.

/// Ids at or above this are rejected: Linux's `NR_CPUS` tops out well below it, and a bound keeps
/// a corrupt range such as `0-4000000000` from allocating gigabytes.
pub(crate) const MAX_ID: usize = 1 << 16;

/// Parses a cpulist into sorted, de-duplicated ids. An empty (or all-whitespace) list is valid and
/// means "no ids", as in the `cpulist` of a memory-only NUMA node. The error says what was wrong.
pub(crate) fn parse(text: &str) -> Result<Vec<usize>, String> {
    let text = text.trim();
    let mut ids = Vec::new();
    if text.is_empty() {
        return Ok(ids);
    }
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!(
                "empty element in cpulist {text:?}; expected ids and ranges like `0-3,8,10-11`"
            ));
        }
        let (range, stride) = match item.split_once(':') {
            Some((range, stride)) => (range, Some(parse_stride(stride, item)?)),
            None => (item, None),
        };
        let (lo, hi) = match range.split_once('-') {
            Some((lo, hi)) => (parse_id(lo, item)?, parse_id(hi, item)?),
            None if stride.is_some() => {
                return Err(format!(
                    "stride in {item:?} needs a range; expected e.g. `0-15:2/4`"
                ));
            }
            None => {
                let id = parse_id(range, item)?;
                (id, id)
            }
        };
        if lo > hi {
            return Err(format!(
                "range {item:?} is reversed; expected `A-B` with A <= B"
            ));
        }
        let (used, group) = stride.unwrap_or((1, 1));
        ids.extend((lo..=hi).filter(|id| (id - lo) % group < used));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn parse_id(s: &str, item: &str) -> Result<usize, String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{item:?} is not an id or range; expected decimal ids like `5` or `0-3`"
        ));
    }
    match s.parse::<usize>() {
        Ok(id) if id < MAX_ID => Ok(id),
        _ => Err(format!(
            "id {s} in {item:?} is too large; ids must be below {MAX_ID}"
        )),
    }
}

/// `USED/GROUP` after a range's colon, with `0 < USED <= GROUP`.
fn parse_stride(s: &str, item: &str) -> Result<(usize, usize), String> {
    let bad =
        || format!("bad stride in {item:?}; expected `A-B:USED/GROUP` with 0 < USED <= GROUP");
    let (used, group) = s.split_once('/').ok_or_else(bad)?;
    let used = parse_id(used, item)?;
    let group = parse_id(group, item)?;
    if used == 0 || used > group {
        return Err(bad());
    }
    Ok((used, group))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_ids_ranges_and_mixtures() {
        assert_eq!(parse("0").unwrap(), vec![0]);
        assert_eq!(parse("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse("0-3,8,10-11\n").unwrap(), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(
            parse("5,1,1-2").unwrap(),
            vec![1, 2, 5],
            "sorted, deduplicated"
        );
        assert_eq!(parse(" 7 - 7 ").unwrap(), vec![7]);
    }

    #[test]
    fn empty_list_means_no_ids() {
        assert_eq!(parse("").unwrap(), Vec::<usize>::new());
        assert_eq!(parse("\n").unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn parses_strides() {
        assert_eq!(parse("0-9:2/4").unwrap(), vec![0, 1, 4, 5, 8, 9]);
        assert_eq!(parse("0-3:1/1").unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn rejects_malformed_lists_with_a_reason() {
        for bad in [
            "a",
            "1,,2",
            ",1",
            "1,",
            "3-1",
            "-1",
            "1-",
            "1-2-3",
            "0x3",
            "+1",
            "1 2",
            "0-3:0/4",
            "0-3:5/4",
            "0-3:2",
            "5:1/2",
            "0-3:x/4",
            "99999999999999999999999",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(
                err.contains("expected") || err.contains("must be"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn rejects_absurd_ids_instead_of_allocating() {
        let err = parse("0-4000000000").unwrap_err();
        assert!(err.contains("below 65536"), "{err}");
    }
}
