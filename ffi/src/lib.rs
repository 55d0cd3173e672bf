//! The C ABI of microvit (see include/microvit.h).
