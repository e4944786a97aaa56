using Docker.DotNet.Models;
using Kiln.Environments;

namespace Kiln.IntegrationTests;

[Collection(DockerCollection.Name)]
public sealed class EnvironmentBuildTests(DockerFixture docker)
{
    [DockerFact]
    public async Task AnEnvironmentBuiltAgainWithNothingChangedIsReused()
    {
        // A nonce in the environment makes the first build a real one, never a leftover of an earlier test run.
        var nonce = Guid.NewGuid().ToString("N");
        using var project = TempProject.Create($$"""
            name: {{TempProject.ProjectName}}
            environments:
              fresh: { distro: debian:bookworm, env: { IT_NONCE: "{{nonce}}" } }
            stages:
              hello: { env: fresh, run: echo $IT_NONCE }
            """);
        var spec = project.Load();
        var builder = new EnvironmentBuilder(docker.Engine, (_, _) => { });
        string? tag = null;
        try
        {
            var first = await builder.BuildAsync(spec, project.Dir, spec.Environments["fresh"]);
            tag = first.Tag;
            Assert.False(first.Reused);

            var second = await builder.BuildAsync(project.Load(), project.Dir, spec.Environments["fresh"]);

            Assert.True(second.Reused);
            Assert.Equal(first.ImageId, second.ImageId);
            Assert.Equal(first.Tag, second.Tag);
            Assert.Equal(first.BuildDigest, second.BuildDigest);
            var image = await docker.Engine.InspectImageAsync(second.Tag);
            Assert.Equal(second.ImageId, image?.Id);
            Assert.Equal(second.BuildDigest.ToString(), image?.Labels[EnvironmentBuilder.BuildDigestLabel]);
        }
        finally
        {
            if (tag is not null)
                await docker.Client.Images.DeleteImageAsync(tag, new ImageDeleteParameters { Force = true });
        }
    }
}
