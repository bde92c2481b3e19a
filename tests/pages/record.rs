//! Page tests: see issue 10 (being written).
