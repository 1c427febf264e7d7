"""Files the kernel reads and writes: atomic writes (:mod:`.atomic`), size-checked reads of untrusted
files (:mod:`.safe_files`) and checkpoints without pickle (:mod:`.checkpoint`)."""
