using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;

namespace StreamGrains.Silo;

/// <summary>The <c>run</c> command: a long-running silo configured from appsettings.json.</summary>
internal static class RunCommand
{
    public static async Task<int> RunAsync(FileInfo? config, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        if (config is not null)
        {
            if (!config.Exists)
            {
                await Console.Error.WriteLineAsync($"Settings file '{config.FullName}' does not exist.");
                return 2;
            }

            builder.Configuration.AddJsonFile(config.FullName, optional: false);
        }

        builder.Configuration.AddEnvironmentVariables("STREAMGRAINS_");
        var errors = new List<string>();
        var settings = HostSettings.Read(builder.Configuration, errors);
        var jobAssemblies = JobAssemblies.Load(settings.JobAssemblyPaths, errors);
        ParentProcessWatch.AddIfRequested(builder.Services, errors);
        if (errors.Count > 0)
        {
            await Console.Error.WriteLineAsync("Invalid settings:" + Environment.NewLine + string.Join(Environment.NewLine, errors.Select(static e => "  - " + e)));
            return 2;
        }

        builder.UseOrleans(silo => SiloHostBuilder.Configure(silo, settings, jobAssemblies));
        using var host = builder.Build();
        foreach (var assembly in jobAssemblies)
        {
            Console.WriteLine($"Job assembly {assembly.GetName().Name} from {assembly.Location}");
        }

        foreach (var line in SiloHostBuilder.StartupSummary(settings))
        {
            Console.WriteLine(line);
        }

        Console.WriteLine("Ctrl+C stops it.");
        await host.RunAsync(cancellationToken);
        return 0;
    }
}
