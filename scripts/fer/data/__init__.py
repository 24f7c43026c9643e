"""Data: image reading and preprocessing, data preparation and subject-independent splits, augmentation,
built-in synthetic faces."""

CKPLUS_HELP = (
    "Get CK+ (the Kaggle 'CK+48' copy: one folder per class, 48x48 PNGs), unpack it so that "
    "{root}/anger/*.png ... {root}/surprise/*.png exist (see ck+/README.md), "
    "or run the built-in synthetic demo instead: `make demo` "
    "(= snakemake --cores all --configfile config/demo.yaml)."
)
