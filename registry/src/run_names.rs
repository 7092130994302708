//! Generated run names (`bold-heron-417`), for runs created without one, as MLflow does.

const ADJECTIVES: &[&str] = &[
    "able", "amber", "ancient", "bold", "brave", "bright", "calm", "clever", "crisp", "daring",
    "eager", "fair", "fast", "fierce", "gentle", "glad", "golden", "grand", "honest", "humble",
    "keen", "kind", "lively", "loud", "lucky", "merry", "mighty", "neat", "noble", "polite",
    "proud", "quick", "quiet", "rapid", "rare", "sharp", "shy", "silent", "smart", "steady",
    "still", "strong", "sunny", "swift", "tidy", "valiant", "vivid", "warm", "wise", "witty",
];

const NOUNS: &[&str] = &[
    "ant", "bass", "bat", "bear", "bee", "boar", "carp", "cat", "colt", "crab", "crane", "crow",
    "deer", "dove", "duck", "eagle", "eel", "elk", "finch", "fox", "frog", "goat", "gull", "hare",
    "hawk", "heron", "hound", "jay", "koi", "lark", "lynx", "mole", "moth", "newt", "owl", "ox",
    "panda", "pike", "ram", "robin", "seal", "shark", "slug", "snail", "stork", "swan", "toad",
    "trout", "whale", "wolf",
];

/// A fresh `adjective-noun-number` name.
pub(crate) fn generate() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    let adjective = ADJECTIVES[usize::from(bytes[0]) % ADJECTIVES.len()];
    let noun = NOUNS[usize::from(bytes[1]) % NOUNS.len()];
    let number = u16::from_le_bytes([bytes[2], bytes[3]]) % 1000;
    format!("{adjective}-{noun}-{number}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_have_three_parts() {
        let name = super::generate();
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert!(super::ADJECTIVES.contains(&parts[0]));
        assert!(super::NOUNS.contains(&parts[1]));
        assert!(parts[2].parse::<u16>().unwrap() < 1000);
    }
}
