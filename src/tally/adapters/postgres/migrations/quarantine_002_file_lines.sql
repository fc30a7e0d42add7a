-- A batch-file line is kept once, however often an interrupted import is re-run.
CREATE UNIQUE INDEX input_quarantine_file_line ON input_quarantine (idem_key) WHERE source = 'file';
