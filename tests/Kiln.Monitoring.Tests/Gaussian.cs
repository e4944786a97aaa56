namespace Kiln.Monitoring.Tests;

/// <summary>Seeded normal draws (Box–Muller) so every test sees the same numbers.</summary>
internal sealed class Gaussian(int seed)
{
    private readonly Random _random = new(seed);

    public double Next(double mean = 0, double sd = 1)
    {
        var u1 = 1.0 - _random.NextDouble();
        var u2 = _random.NextDouble();
        return mean + sd * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    public double[] Draw(int n, double mean = 0, double sd = 1)
    {
        var values = new double[n];
        for (var i = 0; i < n; i++) values[i] = Next(mean, sd);
        return values;
    }
}
