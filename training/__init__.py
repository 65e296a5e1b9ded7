"""Training and evaluation scripts for jpegplus (run as `python -m training.NAME`)."""
