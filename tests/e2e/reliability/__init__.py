"""Reliability tests: the bank test (tests/e2e/reliability/test_bank.py, harness in tests/e2e/reliability/bank.py)."""
