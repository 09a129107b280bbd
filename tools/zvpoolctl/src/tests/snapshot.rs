// SPDX-License-Identifier: GPL-2.0
//! `snapshot` commands, `volume clone`/`promote` and online resize against the
//! fake kernel.
