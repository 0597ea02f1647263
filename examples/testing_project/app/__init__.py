"""A small application that uses streamq: what examples/testing_project/tests tests."""
