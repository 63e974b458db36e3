"""serving process package: a thin shell over the shared core in streamrec/."""
