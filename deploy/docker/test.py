"""deploy/docker without a Docker engine: python test.py.

The CPU image is built and run by deploy/compose/test.sh. The GPU variant
needs NVIDIA's CUDA images, which no registry here serves, so it is checked
as far as it goes without them: build-image.sh --gpu is run against a
recording stand-in for `docker`, and the Dockerfile, parsed with the build
arguments it was given, must start its stages from the CUDA devel and
runtime images and compile with CUDA on. Every deploy script must parse
(bash -n).
"""

import glob
import os
import shlex
import subprocess
import tempfile
import unittest

from dockerfile_parse import DockerfileParser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(ROOT, "deploy", "docker", "Dockerfile")


def build_args(argv):
    """The --build-arg KEY=VALUE pairs of a docker build command line."""
    args = {}
    for flag, value in zip(argv, argv[1:]):
        if flag == "--build-arg":
            key, _, val = value.partition("=")
            args[key] = val
    return args


class DockerfileTest(unittest.TestCase):
    def run_build_image(self, *flags):
        """build-image.sh FLAGS with a `docker` that records its arguments."""
        with tempfile.TemporaryDirectory() as bin_dir:
            log = os.path.join(bin_dir, "calls")
            with open(os.path.join(bin_dir, "docker"), "w") as f:
                f.write(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {shlex.quote(log)}\n')
            os.chmod(os.path.join(bin_dir, "docker"), 0o755)
            env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"])
            subprocess.run(
                [os.path.join(ROOT, "deploy", "docker", "build-image.sh"), *flags],
                check=True, env=env, capture_output=True)
            with open(log) as f:
                return [line.split() for line in f.read().splitlines()]

    def test_gpu_variant_builds_from_the_cuda_images_with_cuda_on(self):
        calls = self.run_build_image("--gpu", "--cuda-devel", "cuda:devel-x",
                                     "--cuda-runtime", "cuda:runtime-x")
        builds = [c for c in calls if c[0] == "build"]
        self.assertEqual(len(builds), 1)
        self.assertIn("moe-serve:gpu", builds[0])
        args = build_args(builds[0])
        self.assertEqual(args["MOE_WITH_CUDA"], "ON")
        parser = DockerfileParser(path=DOCKERFILE, build_args=args)
        self.assertEqual(parser.parent_images, ["cuda:devel-x", "cuda:runtime-x"])
        runs = [i["value"] for i in parser.structure if i["instruction"] == "RUN"]
        self.assertTrue(any('compile.sh /src /opt/moe "$MOE_WITH_CUDA"' in r
                            for r in runs))

    def test_cpu_image_defaults_to_debian(self):
        parser = DockerfileParser(path=DOCKERFILE, build_args={})
        self.assertEqual(parser.parent_images, ["debian:bookworm", "debian:bookworm"])
        stages = [i["value"] for i in parser.structure if i["instruction"] == "FROM"]
        self.assertTrue(stages[0].endswith("AS build"))
        self.assertTrue(stages[1].endswith("AS runtime"))
        copies = [i["value"] for i in parser.structure if i["instruction"] == "COPY"]
        self.assertIn("--from=build /opt/moe /opt/moe", copies)

    def test_scripts_parse(self):
        scripts = glob.glob(os.path.join(ROOT, "deploy", "**", "*.sh"), recursive=True)
        self.assertGreaterEqual(len(scripts), 4)
        for script in scripts:
            with self.subTest(script=os.path.relpath(script, ROOT)):
                subprocess.run(["bash", "-n", script], check=True)


if __name__ == "__main__":
    unittest.main()
