//! The ember trainer.
