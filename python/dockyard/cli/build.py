"""``dockyard build``: build an image from a Dockerfile."""

from __future__ import annotations

import click

from . import CONTEXT, pass_session


@click.command("build", context_settings=CONTEXT)
@click.argument("context_path", metavar="PATH | -")
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag in the 'name:tag' format")
@click.option("-f", "--file", "file", default=None, help="Name of the Dockerfile (Default is 'PATH/Dockerfile')")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables")
@click.option("--target", default="", help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success")
@click.option("--iidfile", default=None, help="Write the image ID to the file")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty", "quiet"]), default="auto",
              help="Set type of progress output")
@click.option("--platform", default=None, help="Set platform if server is multi-platform capable")
@click.option("--network", default="none", help="Set the networking mode for the RUN instructions during build")
@click.option("--rm/--no-rm", "rm", default=True, hidden=True)
@click.option("--force-rm", is_flag=True, hidden=True)
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image")
@click.option("--shm-size", default=None, help="Size of /dev/shm for the RUN instructions")
@click.option("-m", "--memory", default=None, help="Memory limit for the RUN instructions")
@click.option("--ulimit", "ulimits", multiple=True, help="Ulimit options for the RUN instructions")
@pass_session
def build(session, context_path, tags, file, build_args, target, no_cache, labels, quiet, iidfile,
          progress, platform, network, rm, force_rm, pull, shm_size, memory, ulimits) -> None:
    """Build an image from a Dockerfile."""
    from ..build.command import limit_params, run_build

    run_build(session, context_path, list(tags), file, list(build_args), target, no_cache, list(labels), quiet,
              iidfile, progress, network, pull=pull, limits=limit_params(shm_size, memory, list(ulimits)))
