"""Saddle points: x^2 - y^2, and a tiny network whose loss has one at the origin.

Why plain gradient descent can stop on a saddle point, and why a little noise
in the gradient carries it off.
"""
import matplotlib.pyplot as plt
import numpy as np

from lab.plotting import save_figure


def saddle_surface(points):
    """f(x, y) = x^2 - y^2 at points (..., 2): a saddle at the origin."""
    return points[..., 0] ** 2 - points[..., 1] ** 2


def saddle_surface_gradient(point):
    """Gradient (2x, -2y) of ``saddle_surface``."""
    return np.array([2 * point[0], -2 * point[1]])


def two_weight_loss(weights):
    """Loss of the 1-1-1 linear network ``y = w2 (w1 x)`` on the sample x = 1, target 1.

    L(w1, w2) = (1 - w1 w2)^2, at weights (..., 2). Every point of the
    hyperbola w1 w2 = 1 is a global minimum; the origin is a saddle point.
    """
    return (1 - weights[..., 0] * weights[..., 1]) ** 2


def two_weight_gradient(weights):
    """Hand-written gradient of ``two_weight_loss``, by the chain rule.

    With the residual r = 1 - w1 w2: dL/dw1 = -2 r w2 and dL/dw2 = -2 r w1.
    """
    w1, w2 = weights
    residual = 1 - w1 * w2
    return np.array([-2 * residual * w2, -2 * residual * w1])


def finite_difference_hessian(gradient, point, step=1e-5):
    """Hessian at ``point`` by central differences of ``gradient``, symmetrised.

    Column j is (grad(p + h e_j) - grad(p - h e_j)) / 2h.
    """
    point = np.asarray(point, dtype=np.float64)
    columns = [(gradient(point + step * unit) - gradient(point - step * unit)) / (2 * step)
               for unit in np.eye(len(point))]
    hessian = np.stack(columns, axis=1)
    return (hessian + hessian.T) / 2


def gradient_descent(gradient, start, lr, steps, noise_std=0.0, rng=None):
    """Iterates of w <- w - lr (gradient(w) + noise), noise ~ N(0, noise_std^2 I).

    Returns
    -------
    path : ndarray of shape (steps + 1, len(start)), the start included
    """
    path = [np.asarray(start, dtype=np.float64)]
    for _ in range(steps):
        noise = noise_std * rng.standard_normal(len(path[-1])) if noise_std else 0.0
        path.append(path[-1] - lr * (gradient(path[-1]) + noise))
    return np.array(path)


def first_step_below(losses, threshold):
    """The first step at which ``losses`` drops below ``threshold``, or None."""
    below = np.flatnonzero(np.asarray(losses) < threshold)
    return int(below[0]) if len(below) else None


def saddle(out_dir, lr=0.1, steps=150, noise_std=0.01, n_noisy_runs=8, start=(0.5, -0.5),
           seed=0):
    """Saddle points: x^2 - y^2, and a tiny network whose loss has one at the origin.

    The Hessians at the saddles come from central differences of the
    hand-written gradients. Gradient descent is started on the saddle's
    stable line w1 = -w2, where plain descent walks straight into the saddle
    and stays; a little gradient noise pushes it off. Draws the two surfaces
    (``saddle_surface.png``) and the trajectories and losses
    (``saddle_escape.png``).
    """
    origin = np.zeros(2)
    surface_eigenvalues = np.linalg.eigvalsh(
        finite_difference_hessian(saddle_surface_gradient, origin))
    network_eigenvalues, network_eigenvectors = np.linalg.eigh(
        finite_difference_hessian(two_weight_gradient, origin))
    plain_path = gradient_descent(two_weight_gradient, start, lr, steps)
    rng = np.random.default_rng(seed)
    noisy_paths = [gradient_descent(two_weight_gradient, start, lr, steps, noise_std, rng)
                   for _ in range(n_noisy_runs)]
    saddle_loss = float(two_weight_loss(origin))
    escape_steps = [first_step_below(two_weight_loss(path), saddle_loss / 2)
                    for path in noisy_paths]

    figure = plt.figure(figsize=(8, 3.6))
    surface_axes = figure.add_subplot(1, 2, 1, projection='3d')
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 41), np.linspace(-1, 1, 41)), axis=-1)
    surface_axes.plot_surface(grid[..., 0], grid[..., 1], saddle_surface(grid),
                              cmap='coolwarm', alpha=0.8, linewidth=0)
    surface_axes.scatter([0], [0], [0], color='black', s=20)
    surface_axes.set_xlabel('$x$')
    surface_axes.set_ylabel('$y$')
    surface_axes.set_zlabel('$f(x, y)$')
    surface_axes.set_title('$f = x^2 - y^2$; Hessian eigenvalues at 0:\n'
                           + ', '.join(f'{value:+.2f}' for value in surface_eigenvalues))
    contour_axes = figure.add_subplot(1, 2, 2)
    draw_two_weight_landscape(contour_axes)
    for value, vector in zip(network_eigenvalues, network_eigenvectors.T):
        contour_axes.annotate('', xy=0.8 * vector, xytext=(0, 0),
                              arrowprops={'arrowstyle': '->', 'color': 'black'})
        contour_axes.text(*(0.95 * vector), f'{value:+.2f}', ha='center', va='center')
    contour_axes.set_title('$L = (1 - w_1 w_2)^2$: Hessian eigenvectors at 0,\n'
                           'labelled with their eigenvalues')
    contour_axes.legend(loc='upper left')
    figure.tight_layout()
    save_figure(figure, out_dir / 'saddle_surface.png')

    figure, (path_axes, loss_axes) = plt.subplots(1, 2, figsize=(8, 3.6))
    draw_two_weight_landscape(path_axes)
    path_axes.plot(*plain_path.T, color='black', marker='.', markersize=3,
                   label='gradient descent')
    loss_axes.plot(two_weight_loss(plain_path), color='black', label='gradient descent')
    for index, path in enumerate(noisy_paths):
        label = f'with noise, std {noise_std:g}' if index == 0 else None
        path_axes.plot(*path.T, color='C3', alpha=0.6, linewidth=1, label=label)
        loss_axes.plot(two_weight_loss(path), color='C3', alpha=0.6, linewidth=1, label=label)
    path_axes.set_title(f'{steps} steps of lr {lr:g} from {tuple(start)}')
    path_axes.legend(loc='upper left')
    loss_axes.axhline(saddle_loss, color='grey', linestyle=':', label='loss at the saddle')
    loss_axes.set_xlabel('step')
    loss_axes.set_ylabel('loss (squared error)')
    loss_axes.set_title('loss along the trajectories')
    loss_axes.legend()
    figure.tight_layout()
    save_figure(figure, out_dir / 'saddle_escape.png')

    return {'surface_hessian_eigenvalues': surface_eigenvalues.tolist(),
            'network_hessian_eigenvalues': network_eigenvalues.tolist(),
            'network_hessian_eigenvectors': network_eigenvectors.T.tolist(),
            'plain_final_loss': float(two_weight_loss(plain_path[-1])),
            'plain_final_distance_to_saddle': float(np.linalg.norm(plain_path[-1])),
            'noisy_escape_steps': escape_steps,
            'noisy_final_weights': [path[-1].tolist() for path in noisy_paths],
            'noisy_final_losses': [float(two_weight_loss(path[-1])) for path in noisy_paths]}


def draw_two_weight_landscape(axes, limit=1.6):
    """Contours of ``two_weight_loss`` with its minima (w1 w2 = 1) and its saddle."""
    grid = np.stack(np.meshgrid(np.linspace(-limit, limit, 161),
                                np.linspace(-limit, limit, 161)), axis=-1)
    contours = axes.contourf(grid[..., 0], grid[..., 1], two_weight_loss(grid),
                             levels=np.linspace(0, 4, 17), cmap='viridis', extend='max')
    plt.colorbar(contours, ax=axes, label='loss')
    w1 = np.linspace(1 / limit, limit, 100)
    for sign, label in ((1, 'minima, $w_1 w_2 = 1$'), (-1, None)):
        axes.plot(sign * w1, sign / w1, color='C1', linestyle='--', linewidth=1.5,
                  label=label)
    axes.plot(0, 0, marker='x', color='red', markersize=8, linestyle='none', label='saddle')
    axes.set_xlabel('$w_1$')
    axes.set_ylabel('$w_2$')
    axes.set_aspect('equal')
    axes.grid(False)
