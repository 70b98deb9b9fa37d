//! Colours. Decided once (`--color`, tty, NO_COLOR) and passed down; colour is never the only
//! signal: every coloured word is also written out.

use owo_colors::OwoColorize;

use crate::engine::explain::NodeState;

#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pub enabled: bool,
}

impl Palette {
    pub fn new(enabled: bool) -> Self {
        Palette { enabled }
    }

    pub fn state(&self, s: NodeState) -> String {
        let text = s.as_str();
        if !self.enabled {
            return text.to_string();
        }
        match s {
            NodeState::Running => text.green().to_string(),
            NodeState::NotEligible => text.dimmed().to_string(),
            NodeState::Outdated | NodeState::Terminating => text.yellow().to_string(),
            NodeState::Missing
            | NodeState::Pending
            | NodeState::Unhealthy
            | NodeState::Misscheduled => text.red().bold().to_string(),
        }
    }

    pub fn bad(&self, text: &str) -> String {
        if self.enabled {
            text.red().to_string()
        } else {
            text.to_string()
        }
    }

    pub fn good(&self, text: &str) -> String {
        if self.enabled {
            text.green().to_string()
        } else {
            text.to_string()
        }
    }

    pub fn warn(&self, text: &str) -> String {
        if self.enabled {
            text.yellow().to_string()
        } else {
            text.to_string()
        }
    }

    pub fn bold(&self, text: &str) -> String {
        if self.enabled {
            text.bold().to_string()
        } else {
            text.to_string()
        }
    }

    pub fn dim(&self, text: &str) -> String {
        if self.enabled {
            text.dimmed().to_string()
        } else {
            text.to_string()
        }
    }
}
