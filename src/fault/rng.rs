//! splitmix64: a tiny seeded generator, enough to make fault plans reproducible.

/// One splitmix64 step: a well-mixed 64-bit value from any 64-bit input.
pub(super) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform float in `[0, 1)` from a 64-bit value.
pub(super) fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_values_and_range() {
        // Reference value of splitmix64 seeded with 0 (first output).
        assert_eq!(super::splitmix64(0), 0xe220_a839_7b1d_cdaf);
        for i in 0..1000 {
            let u = super::unit(super::splitmix64(i));
            assert!((0.0..1.0).contains(&u));
        }
    }
}
