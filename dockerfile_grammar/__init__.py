"""Dockerfile front end: a Lark grammar that parses Dockerfiles into typed instructions."""
