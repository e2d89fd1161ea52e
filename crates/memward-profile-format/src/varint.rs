//! LEB128 varints and zigzag signed integers: the only number encodings of the format.
//!
//! Most numbers in a profile are small (sizes, stack ids, deltas between nearby pointers),
//! so seven bits per byte with a continuation bit keeps a typical event at a few bytes
//! without a general-purpose compressor. Signed deltas are zigzag-mapped first
//! (0, -1, 1, -2, ... to 0, 1, 2, 3, ...) so small negative steps stay short.

/// The longest encoding of a `u64`: ten bytes.
pub const MAX_VARINT_LEN: usize = 10;

/// Writes `v` at the start of `out` and returns the number of bytes used.
///
/// # Panics
/// If `out` is shorter than the encoding (at most [`MAX_VARINT_LEN`] bytes).
#[inline]
pub fn put_u64(out: &mut [u8], mut v: u64) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// Maps a signed value to an unsigned one with small magnitudes first.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Decodes a varint from the start of `bytes`: `Ok(Some((value, length)))`, `Ok(None)`
/// when `bytes` ends inside the varint, `Err(())` when it is longer than ten bytes or
/// overflows 64 bits.
#[inline]
#[allow(clippy::result_unit_err)]
pub fn get_u64(bytes: &[u8]) -> Result<Option<(u64, usize)>, ()> {
    let mut v: u64 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            return Err(());
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(Some((v, i + 1)));
        }
    }
    if bytes.len() >= MAX_VARINT_LEN {
        return Err(());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edges() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            let mut b = [0u8; MAX_VARINT_LEN];
            let n = put_u64(&mut b, v);
            assert_eq!(get_u64(&b[..n]), Ok(Some((v, n))));
            assert_eq!(get_u64(&b[..n - 1]), Ok(None));
        }
        assert_eq!(put_u64(&mut [0; 10], 127), 1);
        assert_eq!(put_u64(&mut [0; 10], 128), 2);
        assert_eq!(put_u64(&mut [0; 10], u64::MAX), 10);
        assert_eq!(get_u64(&[0xff; 11]), Err(()));
        assert_eq!(
            get_u64(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            Err(())
        );
    }

    #[test]
    fn zigzag_orders_small_magnitudes_first() {
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
        for v in [0, 1, -1, 1000, -1000, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
