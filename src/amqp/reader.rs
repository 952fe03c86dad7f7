//! Big-endian reads off the front of a byte slice, for the hand-written frame readers
//! (`content::parse`, `hot_frames`): every read is checked, `None` when the input is short.

#[derive(Debug)]
pub(crate) struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    pub fn short(&mut self) -> Option<String> {
        let n = self.u8()?;
        let bytes = self.take(n.into())?;
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    }

    /// A u32-length-prefixed run, as its own reader.
    pub fn sized(&mut self) -> Option<Reader<'a>> {
        let n = self.u32()?;
        self.take(usize::try_from(n).ok()?).map(Reader)
    }
}

/// Random damage for the readers' tests: `edits` times, overwrite, cut, insert or append a
/// byte.
#[cfg(test)]
pub(crate) fn damage(rng: &mut rand::rngs::StdRng, bytes: &mut Vec<u8>, edits: usize) {
    use rand::Rng;
    for _ in 0..edits {
        match rng.random_range(0..4) {
            0 if !bytes.is_empty() => {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            1 if !bytes.is_empty() => bytes.truncate(rng.random_range(0..bytes.len())),
            2 => {
                let at = rng.random_range(0..=bytes.len());
                bytes.insert(at, rng.random());
            }
            _ => bytes.push(rng.random()),
        }
    }
}
