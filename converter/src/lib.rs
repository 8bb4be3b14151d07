//! Convert checkpoints to .ember.
