//! Mutating workflows (orphan, adopt, migrate): fetch -> checks -> plan -> confirm -> mutate -> verify.
