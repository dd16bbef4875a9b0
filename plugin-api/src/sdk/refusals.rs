//! The files a provider would leave out of a sequence, grouped by reason, in bounded memory: each
//! reason keeps its count and the first few names, which is all a one-line note shows. A sequence of
//! 100,000 flat photos refused by a 360°-only service costs three names, not 100,000.

/// Refused files, grouped by reason in the order the reasons first appear.
#[derive(Debug, Clone, Default)]
pub struct Refusals {
    named: usize,
    groups: Vec<Group>,
    total: usize,
}

/// One reason: how many files it refused, and the first of their names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Why.
    pub reason: String,
    /// How many files.
    pub count: usize,
    /// The first `named` of them (see [`Refusals::naming`]).
    pub names: Vec<String>,
}

impl Group {
    /// How many refused files are not named.
    pub fn unnamed(&self) -> usize {
        self.count - self.names.len()
    }
}

impl Refusals {
    /// Keeps the first `named` names of each reason.
    pub fn naming(named: usize) -> Refusals {
        Refusals {
            named,
            ..Refusals::default()
        }
    }

    /// Counts `name`, refused because of `reason`.
    pub fn add(&mut self, name: &str, reason: String) {
        self.total += 1;
        let named = self.named;
        let group = match self.groups.iter().position(|g| g.reason == reason) {
            Some(at) => &mut self.groups[at],
            None => {
                self.groups.push(Group {
                    reason,
                    count: 0,
                    names: Vec::new(),
                });
                let last = self.groups.len() - 1;
                &mut self.groups[last]
            }
        };
        group.count += 1;
        if group.names.len() < named {
            group.names.push(name.to_string());
        }
    }

    /// How many files were refused.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The reasons, in the order they first appeared.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_keeps_its_count_and_first_names() {
        let mut refused = Refusals::naming(2);
        for i in 0..100_000 {
            refused.add(&format!("{i}.jpg"), "flat".into());
        }
        refused.add("x.png", "not a JPEG".into());
        assert_eq!(refused.len(), 100_001);
        let groups = refused.groups();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].names, ["0.jpg", "1.jpg"]);
        assert_eq!((groups[0].count, groups[0].unnamed()), (100_000, 99_998));
        assert_eq!(
            (groups[1].reason.as_str(), groups[1].count),
            ("not a JPEG", 1)
        );
    }
}
