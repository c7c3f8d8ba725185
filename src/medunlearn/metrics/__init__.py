"""Forgetting, utility, privacy and clinical-safety metrics, each registered in one file
(`registry`), all read off one inference pass per split by the one evaluator (`evaluate`)."""
