"""The analyses of a study, one registered file each (`base`): when each applies, its tables,
figures, legend and checks, over shared table (`tables`) and figure (`plots`) helpers."""
