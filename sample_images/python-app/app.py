"""strata sample: a tiny Python program."""

import os
import platform


def main() -> None:
    name = os.environ.get("APP_NAME", "python-app")
    print(f"Hello from {name} on Python {platform.python_version()}")


if __name__ == "__main__":
    main()
