"""Offscreen rendering of the face model with pyrender: RGB image, foreground mask, exact heatmaps and landmarks.

Two passes share one camera:
- the shaded pass (pyrender PBR, optional 4x multisampling) gives the RGB image;
- the triangle-id pass (flat colours, no multisampling, so ids are exact) gives the mask and, with perspective-correct
  barycentrics computed in numpy, any per-vertex value interpolated at every pixel. The heatmap uses this to stay
  in exact float millimetres, which an 8-bit colour buffer could not hold, and so do the ground-truth passes
  (camera depth, normals, segmentation classes) and the landmarks' visibility.

Ground truth is in OpenCV's camera frame (x right, y down, z forward, mm): `intrinsics` (pixels, centres at .5 as
in `landmarks_2d`) and `extrinsics(view)` (head/world mm -> camera mm) project `landmarks_3d` onto `landmarks_2d`.

Rendering is headless: `import_pyrender` selects Mesa's EGL platform (unless PYOPENGL_PLATFORM is set) just before
pyrender is first imported, the one place the project touches that variable; importing this module changes nothing.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np

from .face.eyelashes import STRIPS_PER_LID, lash_cards, lash_texture
from .face.geometry import atlas_texcoords, barycentric_2d, skin_triangles, vertex_normals
from .face.model import FaceModel
from .face.segments import CLASS_ID, triangle_classes
from .views import DEFAULT_IMAGE_SIZE, DEFAULT_VIEWS, Lighting, View  # noqa: F401  (re-exported from generation.render)


def import_pyrender():
    """pyrender, imported headless: PyOpenGL reads PYOPENGL_PLATFORM once, when OpenGL is first imported, so the
    platform is chosen here, before that (EGL, which needs no display), unless the user chose one."""
    if "OpenGL" not in sys.modules:
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    import pyrender

    return pyrender

# Geometry that is a transparent overlay in the original (Unreal) shaders and renders as artefacts otherwise.
# The sclera is an outer cornea-like shell that hides the iris, and the eyelashes are strips meant for alpha
# textures (solid black bands otherwise): both are hidden too; the lashes are drawn as spikes cut from the strips
# (`face.eyelashes`) instead.
HIDDEN_REGIONS = ("lacrimal_fluid", "eye_blend", "eye_occlusion", "sclera", "eyelashes")

# Plain albedo per region (sRGB 0-1); textures replace the skin part in the generator.
REGION_COLORS: dict[str, tuple[float, float, float]] = {
    "face": (0.80, 0.62, 0.52),
    "head_and_neck": (0.80, 0.62, 0.52),
    "mouth_socket": (0.30, 0.10, 0.10),
    "eye_socket": (0.55, 0.35, 0.33),
    "gums_and_tongue": (0.62, 0.28, 0.28),
    "teeth": (0.88, 0.85, 0.76),
    "iris": (0.88, 0.86, 0.82),  # the front of the eyeball: white, with iris and pupil painted by radius below
}
IRIS_COLOR = (0.30, 0.18, 0.10)
LASH_COLOR = (0.06, 0.045, 0.04)
SCLERA_COLOR = (0.78, 0.73, 0.69)
SKIN_ROUGHNESS = 0.62
ORBIT_DEPTH_MM = 45.0
ALPHA_CUTOFF = 0.5  # texels of a card (hair, lashes) with less coverage than this are cut out, not blended
# The order the meshes of a pass are drawn in (`FaceRenderer._draw_order`): the face, then what lies over it.
DRAW_ORDER = ("shaded", "ids", "hair", "hair_ids")
IRIS_RADIUS_MM = 5.8
# A landmark is visible when its pixel shows the face (not hair or the background) and the farthest face surface
# seen in its 3x3 pixel neighbourhood is no nearer the camera than the landmark by more than this: an unoccluded
# point lies between the depths of the pixel centres around it, an occluded one behind all of them.
VISIBILITY_TOLERANCE_MM = 1.0
# OpenGL camera axes (x right, y up, z backward) -> OpenCV's (x right, y down, z forward)
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])
PUPIL_RADIUS_MM = 2.0


@dataclass
class Render:
    """One rendered view. `image` uint8 (H, W, 3); `mask` bool (H, W) foreground (pixel centres covered when a
    heatmap was rendered, any coverage otherwise); `heatmap` float32 mm (H, W) or None;
    `landmarks_2d` float32 (68, 2) pixel coordinates (x right, y down, pixel centres at .5)."""

    image: np.ndarray | None
    mask: np.ndarray
    landmarks_2d: np.ndarray
    heatmap: np.ndarray | None = None
    depth: np.ndarray | None = field(default=None, repr=False)  # camera z (mm) float32 (H, W), 0 = background
    # ground truth (`FaceRenderer.render(ground_truth=True)`), OpenCV camera frame in mm
    intrinsics: np.ndarray | None = field(default=None, repr=False)  # (3, 3) pixels
    extrinsics: np.ndarray | None = field(default=None, repr=False)  # (4, 4) head (world) -> camera
    landmarks_3d: np.ndarray | None = field(default=None, repr=False)  # (68, 3) float32 camera space
    landmarks_visible: np.ndarray | None = field(default=None, repr=False)  # (68,) bool
    normals: np.ndarray | None = field(default=None, repr=False)  # (H, W, 3) float32 unit, camera space; 0 = bg
    segmentation: np.ndarray | None = field(default=None, repr=False)  # (H, W) uint8 SEGMENTATION_CLASSES ids


def _patch_multisampling(renderer) -> None:
    """pyrender always renders 4x multisampled. Make the sample count an attribute, `renderer.samples`
    (0 = off), and rebuild the framebuffer whenever a render asks for a different count."""
    from OpenGL.GL import GL_DEPTH_COMPONENT24, GL_RENDERBUFFER, GL_RGBA, glBindRenderbuffer
    from OpenGL.GL import glRenderbufferStorageMultisample

    original = renderer._configure_main_framebuffer
    renderer.samples, renderer._built_samples = 4, 4

    def configure():
        if renderer._main_fb is not None and renderer._built_samples != renderer.samples:
            renderer._delete_main_framebuffer()
        fresh = renderer._main_fb is None
        original()
        if fresh:
            renderer._built_samples = renderer.samples
            size = (renderer.viewport_width, renderer.viewport_height)
            if renderer.samples != 4:
                glBindRenderbuffer(GL_RENDERBUFFER, renderer._main_cb_ms)
                glRenderbufferStorageMultisample(GL_RENDERBUFFER, renderer.samples, GL_RGBA, *size)
                glBindRenderbuffer(GL_RENDERBUFFER, renderer._main_db_ms)
                glRenderbufferStorageMultisample(GL_RENDERBUFFER, renderer.samples, GL_DEPTH_COMPONENT24, *size)

    renderer._configure_main_framebuffer = configure


def _patch_alpha_test(renderer) -> None:
    """pyrender's shaders ignore alpha masks. Give a material with `alphaMode="MASK"` an alpha test in the shaded
    pass: its fragments whose base colour alpha (texture times factor) is under the material's `alphaCutoff` are
    discarded, so what lies behind shows, and the rest are drawn opaque (cards: hair cards, lash strips)."""
    original, cache = renderer._get_primitive_program, renderer._program_cache
    get_program = cache.get_program
    drawing = {"cutoff": None}  # the alpha cutoff of the primitive whose program is being looked up

    def primitive_program(primitive, flags, program_flags):
        material = primitive.material
        masked = material is not None and material.alphaMode == "MASK"
        drawing["cutoff"] = float(material.alphaCutoff) if masked else None
        try:
            return original(primitive, flags, program_flags)
        finally:
            drawing["cutoff"] = None

    def program(vertex_shader, fragment_shader, geometry_shader=None, defines=None):
        cutoff = drawing["cutoff"]
        if cutoff is None or fragment_shader != "mesh.frag":
            return get_program(vertex_shader, fragment_shader, geometry_shader, defines)
        # a define of its own (naming the cutoff) keeps each masked program apart from the opaque one in the cache
        found = get_program(vertex_shader, fragment_shader, geometry_shader,
                            dict(defines or {}, ALPHA_TEST_CUTOFF=f"{cutoff:.4f}"))
        if found._program_id is None and not hasattr(found, "_alpha_test"):
            load = found._load
            test = f"if (base_color.a < {cutoff:.6f}) discard;\n    base_color.a = 1.0;\n    "
            found._load = lambda path: load(path).replace("vec3 dialectric_spec", test + "vec3 dialectric_spec", 1)
            found._alpha_test = cutoff
        return found

    renderer._get_primitive_program = primitive_program
    cache.get_program = program


def _look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """OpenGL camera-to-world pose looking from `eye` at `target`."""
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, -forward, eye
    return pose


def _direction(azimuth: float, elevation: float) -> np.ndarray:
    a, e = np.radians(azimuth), np.radians(elevation)
    return np.array([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])


def region_vertex_colors(face_model: FaceModel, iris=IRIS_COLOR, age_factor: float = 0.0, lashes=LASH_COLOR) -> np.ndarray:
    """Plain sRGB albedo (V, 3) per model region, with the eyes painted on each eyeball by radius around the gaze
    axis: an off-white sclera that reddens toward the corners, darkens under the upper lid (which casts no shadow
    in this renderer) and yellows with age, an iris lighter toward the pupil with, in old age, a pale arcus at its
    rim, and the pupil. `age_factor` is 0 at 25 years and 1 at 90; `lashes` colours the eyelashes."""
    colors = np.tile(np.array(REGION_COLORS["face"], dtype=np.float32), (face_model.num_vertices, 1))
    for region, color in REGION_COLORS.items():
        colors[face_model.region(region)] = color
    colors[face_model.region("eyelashes")] = lashes
    iris = np.asarray(iris, np.float32)
    for side in ("left", "right"):  # iris and pupil around the gaze axis (+z) through the eyeball's centre
        eyeball = face_model.region(f"iris_{side}", f"sclera_{side}")
        centre = face_model.neutral[eyeball].mean(axis=0)
        front = face_model.region(f"iris_{side}")
        offset = face_model.neutral[front] - centre
        radial = np.linalg.norm(offset[:, :2], axis=1)
        ahead = offset[:, 2] > 0
        sclera = np.array(SCLERA_COLOR, np.float32) * (1 - 0.12 * np.clip((radial - 8.0) / 4.0, 0, 1))[:, None]
        sclera[:, 1:] *= (1 - 0.1 * np.clip((radial - 8.0) / 4.0, 0, 1))[:, None]  # redder toward the corners
        sclera *= (1 - 0.35 * np.clip((offset[:, 1] - 1.0) / 5.0, 0, 1))[:, None]  # the upper lid's shade
        sclera *= np.array([1.0, 1.0 - 0.05 * age_factor, 1.0 - 0.15 * age_factor], np.float32)  # yellows with age
        colors[front] = sclera
        ring = np.clip((radial - PUPIL_RADIUS_MM) / (IRIS_RADIUS_MM - PUPIL_RADIUS_MM), 0, 1)
        iris_shade = iris * (1.25 - 0.45 * ring[:, None] ** 2)
        in_iris = ahead & (radial < IRIS_RADIUS_MM)
        # arcus senilis: a pale grey ring at the edge of the iris in old age
        arcus = 0.6 * max(age_factor - 0.4, 0.0) / 0.6 * np.clip((radial - (IRIS_RADIUS_MM - 1.2)) / 0.8, 0, 1)
        iris_shade = iris_shade * (1 - arcus[:, None]) + np.array([0.62, 0.62, 0.64]) * arcus[:, None]
        colors[front[in_iris]] = np.clip(iris_shade[in_iris], 0, 1)
        colors[front[ahead & (radial < PUPIL_RADIUS_MM)]] = (0.02, 0.02, 0.02)
    return colors


def srgb_to_linear(colors: np.ndarray) -> np.ndarray:
    """sRGB (0-1) to linear light, float32."""
    colors = np.asarray(colors, dtype=np.float32)
    return np.where(colors <= 0.04045, colors / 12.92, ((colors + 0.055) / 1.055) ** 2.4).astype(np.float32)


class FaceRenderer:
    """Renders posed face-model vertices from a `View`.

    One OpenGL context per renderer; reuse it for many frames (creating one costs far more than a frame).
    `msaa` switches pyrender's 4x multisampling for the shaded pass (the id pass never uses it); without it the
    silhouette is feathered in `composite`, about three times faster in software GL with nearly the same look.
    `eyelashes` draws the lashes (`face.eyelashes`) in the shaded pass. They are fine hairs the skin shows through,
    so the mask and the heatmap are those of the skin behind them.
    """

    def __init__(
        self,
        face_model: FaceModel,
        image_size: int = DEFAULT_IMAGE_SIZE,
        msaa: bool = False,
        yfov_deg: float = 20.0,
        hidden_regions: tuple[str, ...] = HIDDEN_REGIONS,
        eyelashes: bool = True,
    ):
        pyrender = import_pyrender()
        self._pyrender = pyrender
        self.face_model = face_model
        self.image_size = int(image_size)
        self.msaa = msaa
        # Triangles to draw: everything but the hidden overlays.
        hidden = np.zeros(face_model.num_vertices, dtype=bool)
        if hidden_regions:
            hidden[face_model.region(*hidden_regions)] = True
        self.faces = face_model.faces[~hidden[face_model.faces].any(axis=1)]
        self.vertex_colors = srgb_to_linear(region_vertex_colors(face_model))
        # Skin triangles drawn with the UV atlas texture: one render vertex per distinct (vertex, uv) corner.
        skin = np.isin(np.arange(len(face_model.faces)), skin_triangles(face_model))
        drawn = ~hidden[face_model.faces].any(axis=1)
        self._plain_faces = face_model.faces[drawn & ~skin]
        corners = np.stack([face_model.faces[skin].ravel(), face_model.face_uv_index[skin].ravel()], axis=1)
        unique, inverse = np.unique(corners, axis=0, return_inverse=True)
        self._skin_vertex = unique[:, 0]
        self._skin_texcoord = atlas_texcoords(face_model.uv[unique[:, 1]])
        self._skin_faces = inverse.reshape(-1, 3).astype(np.int32)
        self._id_colors = self._encode_ids(len(self.faces))
        self.triangle_classes = triangle_classes(face_model, self.faces)  # segmentation class of each drawn triangle
        self.eyelashes = eyelashes
        # eyelash cards by the number of upper-lid strips drawn (a texture's `lash_strips`), and the lashes drawn on
        # them for a texture that brings none (`lashes`)
        self._lash_sets = {n: lash_cards(face_model, n) for n in range(1, STRIPS_PER_LID + 1)} if eyelashes else {}
        self._default_lashes = lash_texture(40, 2.5, 0.9, np.random.default_rng(0))
        self._lash_material_source, self._lash_material = None, None

        # Framing: the Multi-PIE landmarks of the mean face plus forehead and margin fill the frame.
        landmarks = face_model.neutral[face_model.landmarks]
        low, high = landmarks.min(axis=0), landmarks.max(axis=0)
        # The camera orbits a point inside the head (behind the face by ORBIT_DEPTH_MM), so side views keep the head,
        # not the tip of the nose, in the middle of the frame.
        self.target = np.array(
            [0.0, (low[1] + high[1]) / 2 + 26.0, (low[2] + high[2]) / 2 - ORBIT_DEPTH_MM], dtype=np.float64
        )
        half_height = (high[1] - low[1]) / 2 + 56.0  # room for the crown and the hair
        self.yfov = np.radians(yfov_deg)
        self.distance = half_height / np.tan(self.yfov / 2) + (high[2] - low[2]) / 2 + ORBIT_DEPTH_MM
        self.camera = pyrender.PerspectiveCamera(yfov=self.yfov, aspectRatio=1.0, znear=50.0, zfar=5000.0)
        self.projection = self.camera.get_projection_matrix(self.image_size, self.image_size)

        self._offscreen = pyrender.OffscreenRenderer(self.image_size, self.image_size)
        _patch_multisampling(self._offscreen._renderer)
        _patch_alpha_test(self._offscreen._renderer)
        self._offscreen._renderer._sorted_mesh_nodes = self._draw_order
        self._id_material = pyrender.MetallicRoughnessMaterial()
        self._two_sided_id_material = pyrender.MetallicRoughnessMaterial(doubleSided=True)
        self._build_scene()

    # ----------------------------------------------------------------------------------------------- set-up
    @staticmethod
    def _encode_ids(num_faces: int, first: int = 1) -> np.ndarray:
        """Per-corner RGB colours that encode triangle index + 1 (0 is background), 24 bits."""
        ids = np.repeat(np.arange(first, first + num_faces, dtype=np.uint32), 3)
        return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255, np.full_like(ids, 255)], axis=1).astype(
            np.uint8
        )

    @property
    def intrinsics(self) -> np.ndarray:
        """The pinhole camera matrix (3, 3) in pixels, x right and y down, pixel centres at .5."""
        focal = self.image_size / (2.0 * np.tan(self.yfov / 2.0))
        centre = self.image_size / 2.0
        return np.array([[focal, 0.0, centre], [0.0, focal, centre], [0.0, 0.0, 1.0]])

    def extrinsics(self, view: View) -> np.ndarray:
        """World (head, mm) -> OpenCV camera (mm; x right, y down, z forward) of `view`, (4, 4)."""
        return GL_TO_CV @ np.linalg.inv(self.camera_pose(view))

    def camera_pose(self, view: View) -> np.ndarray:
        eye = self.target + self.distance * view.distance_scale * _direction(view.yaw, view.pitch)
        pose = _look_at(eye, self.target.copy())
        if view.roll:
            c, s = np.cos(np.radians(view.roll)), np.sin(np.radians(view.roll))
            pose[:3, :2] = pose[:3, :2] @ np.array([[c, s], [-s, c]])  # turn the camera about its viewing axis
        return pose

    # ----------------------------------------------------------------------------------------------- passes
    # One persistent scene holds the shaded mesh and the id mesh (only one visible per pass), so buffers and the
    # skin texture stay on the GPU between passes instead of being uploaded again every frame.
    def _build_scene(self) -> None:
        pyrender = self._pyrender
        self._scene = pyrender.Scene(bg_color=(0, 0, 0, 0))
        self._camera_node = self._scene.add(self.camera, pose=np.eye(4))
        self._light_nodes = [self._scene.add(pyrender.DirectionalLight(), pose=np.eye(4)) for _ in range(2)]
        self._mesh_nodes: dict[str, object] = {}
        # the uploaded skin textures and the arrays they show: the albedo stays while only the normal map changes
        # (an expression's creases), and the reverse
        self._texture_source, self._texture, self._linear_colors, self._roughness_texture = None, None, None, None
        self._normal_source, self._normal_texture = None, None
        self._normal_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._hair_sources: dict[str, object] = {}  # pass name -> the HairMesh its cached node shows

    def _stage(self, view: View, lighting: Lighting | None = None) -> None:
        pose = self.camera_pose(view)
        self._scene.set_pose(self._camera_node, pose)
        if lighting is None:
            return
        self._scene.ambient_light = np.full(3, lighting.ambient)
        lights = (
            (lighting.key_direction, lighting.key_intensity, lighting.color),
            (lighting.fill_direction, lighting.fill_intensity, lighting.fill_color),
        )
        for node, (direction, intensity, color) in zip(self._light_nodes, lights):
            light_dir = pose[:3, :3] @ _direction(*direction)  # from the head toward the light, world space
            node.light.intensity = intensity
            node.light.color = np.asarray(color, dtype=np.float32)
            self._scene.set_pose(node, _look_at(self.target + light_dir * 1000.0, self.target.copy()))

    def _draw_order(self, scene) -> list:
        """The meshes of a pass in a fixed order, the face before the hair: the head hides the hair behind it, and
        drawn first it lets the depth test drop those hair fragments before they are shaded. (pyrender would draw
        meshes at the same pose in the order of a set.)"""
        rank = {id(node): DRAW_ORDER.index(name) for name, node in self._mesh_nodes.items()}
        return sorted(scene.mesh_nodes, key=lambda node: rank.get(id(node), len(DRAW_ORDER)))

    def _show(self, name: str, mesh) -> None:
        """Put `mesh` in the scene under `name` (replacing the previous one) and hide the other meshes."""
        old = self._mesh_nodes.pop(name, None)
        if old is not None:
            self._scene.remove_node(old)
        for node in self._mesh_nodes.values():
            node.mesh.is_visible = False
        self._mesh_nodes[name] = self._scene.add(mesh)

    def _skin_texture(self, texture):
        roughness = getattr(texture, "roughness", None)
        sources = (texture.albedo, texture.vertex_colors, roughness)
        if self._texture_source is None or any(a is not b for a, b in zip(self._texture_source, sources)):
            self._texture_source = sources
            self._texture = self._pyrender.Texture(source=texture.albedo, source_channels="RGB")
            # pyrender multiplies vertex colours into the linear-light result, so sRGB albedo is linearised here.
            self._linear_colors = srgb_to_linear(texture.vertex_colors)
            # glTF reads roughness from the green channel and metalness from the blue one (0: skin is no metal)
            self._roughness_texture = None if roughness is None else self._pyrender.Texture(
                source=np.stack([roughness, roughness, np.zeros_like(roughness)], axis=-1), source_channels="RGB")
        normal = getattr(texture, "normal", None)
        if normal is not self._normal_source:
            self._normal_source = normal
            self._normal_texture = None if normal is None else self._pyrender.Texture(source=normal, source_channels="RGB")
        return self._texture

    def _normals(self, vertices: np.ndarray) -> np.ndarray:
        """Vertex normals, remembered for the last few meshes (each mesh is rendered from several views)."""
        cached = self._normal_cache.get(id(vertices))
        if cached is not None and cached[0] is vertices:
            return cached[1]
        if len(self._normal_cache) >= 32:
            self._normal_cache.clear()
        normals = vertex_normals(vertices, self.faces)
        self._normal_cache[id(vertices)] = (vertices, normals)  # holding `vertices` keeps its id unique
        return normals

    def render_rgb(self, vertices: np.ndarray, view: View, lighting: Lighting | None = None, texture=None, hair=None):
        """Shaded RGBA (uint8 H, W, 4; alpha is pixel coverage, colour premultiplied by it over black) and depth
        (float32, 0 = background). `texture` (a `SkinTexture`) paints the skin; without it the skin is plain.
        `hair` (a `HairMesh`) is drawn over the head, both sides of its surface."""
        pyrender = self._pyrender
        self._stage(view, lighting or Lighting())
        normals = self._normals(vertices)
        if texture is None:
            colors = self.vertex_colors
            primitives = [self._primitive(vertices, normals, colors, self.faces)]
        else:
            material = pyrender.MetallicRoughnessMaterial(
                baseColorTexture=self._skin_texture(texture), normalTexture=self._normal_texture,
                metallicRoughnessTexture=self._roughness_texture, metallicFactor=0.0,
                roughnessFactor=SKIN_ROUGHNESS if self._roughness_texture is None else 1.0,  # the map holds it all
            )
            skin = pyrender.Primitive(
                positions=vertices[self._skin_vertex],
                normals=normals[self._skin_vertex],
                texcoord_0=self._skin_texcoord,
                indices=self._skin_faces,
                material=material,
            )
            colors = self._linear_colors
            primitives = [skin, self._primitive(vertices, normals, colors, self._plain_faces)]
        if self.eyelashes:
            primitives.append(self._lash_primitive(vertices, colors, view, texture))
        self._show("shaded", pyrender.Mesh(primitives))
        self._show_cached("hair", hair, self._hair_mesh)
        self._offscreen._renderer.samples = 4 if self.msaa else 0
        color, depth = self._offscreen.render(self._scene, flags=pyrender.RenderFlags.RGBA)
        return np.ascontiguousarray(color), depth

    def _show_cached(self, name: str, hair, build) -> None:
        """Show the mesh `build(hair)` under `name` beside the pass's own mesh (nothing for `hair` None). One
        identity's hair is drawn for many frames, so its meshes stay in the scene (uploaded once) until another
        identity's hair replaces them."""
        if self._hair_sources.get(name, False) is not hair:
            self._hair_sources[name] = hair
            old = self._mesh_nodes.pop(name, None)
            if old is not None:
                self._scene.remove_node(old)
            if hair is not None:
                self._mesh_nodes[name] = self._scene.add(build(hair))
        node = self._mesh_nodes.get(name)
        if node is not None:
            node.mesh.is_visible = hair is not None

    def _hair_mesh(self, hair):
        """The shaded hair: both sides of its surface; with `hair.strands`, an alpha-tested card texture."""
        strands = getattr(hair, "strands", None)
        primitive = self._pyrender.Primitive(
            positions=hair.vertices,
            normals=vertex_normals(hair.vertices, hair.faces),
            color_0=srgb_to_linear(hair.colors),
            texcoord_0=None if strands is None else hair.texcoords,
            indices=hair.faces,
            material=self._card_material(strands, hair.roughness),
        )
        return self._pyrender.Mesh([primitive])

    def _card_material(self, rgba: np.ndarray | None, roughness: float):
        """A two-sided material; with `rgba` (H, W, 4 uint8: RGB times the vertex colour, A the coverage) its texels
        under `ALPHA_CUTOFF` are cut out (`_patch_alpha_test`). Sampled without mipmaps: averaged fine strands would
        fall under the cutoff as a whole."""
        pyrender = self._pyrender
        if rgba is None:
            return pyrender.MetallicRoughnessMaterial(metallicFactor=0.0, roughnessFactor=roughness, doubleSided=True)
        from OpenGL.GL import GL_CLAMP_TO_EDGE, GL_LINEAR, GL_REPEAT

        sampler = pyrender.Sampler(magFilter=GL_LINEAR, minFilter=GL_LINEAR, wrapS=GL_REPEAT, wrapT=GL_CLAMP_TO_EDGE)
        texture = pyrender.Texture(source=rgba, source_channels="RGBA", sampler=sampler)
        return pyrender.MetallicRoughnessMaterial(metallicFactor=0.0, roughnessFactor=roughness, doubleSided=True,
                                                  baseColorTexture=texture, alphaMode="MASK", alphaCutoff=ALPHA_CUTOFF)

    def _hair_id_mesh(self, hair):
        """The hair in the triangle-id pass: both sides (seen from inside too), ids after the face's."""
        corners = np.asarray(hair.vertices, np.float32)[hair.faces]
        ids = self._encode_ids(len(hair.faces), first=len(self.faces) + 1)
        primitive = self._pyrender.Primitive(
            positions=corners.reshape(-1, 3), color_0=ids, material=self._two_sided_id_material
        )
        return self._pyrender.Mesh([primitive])

    def _lash_primitive(self, vertices, colors, view: View, texture):
        """The eyelash cards `texture` asks for (its `lash_strips` and `lashes`), alpha-tested, both sides, each
        point lit on the side the camera sees."""
        cards = self._lash_sets[getattr(texture, "lash_strips", STRIPS_PER_LID)]
        lashes = getattr(texture, "lashes", None)
        lashes = self._default_lashes if lashes is None else lashes
        if self._lash_material_source is not lashes:
            self._lash_material_source, self._lash_material = lashes, self._card_material(lashes, 0.6)
        positions = vertices[cards.vertices]
        normals = vertex_normals(positions, cards.faces)
        normals *= np.where(np.einsum("ij,ij->i", normals, self.camera_pose(view)[:3, 3] - positions) < 0, -1, 1)[:, None]
        return self._pyrender.Primitive(positions=positions, normals=normals.astype(np.float32),
                                        texcoord_0=cards.texcoords, color_0=colors[cards.vertices],
                                        indices=cards.faces, material=self._lash_material)

    def _primitive(self, vertices, normals, colors, faces):
        return self._pyrender.Primitive(
            positions=vertices,
            normals=normals,
            color_0=colors,
            indices=faces,
            material=self._pyrender.MetallicRoughnessMaterial(metallicFactor=0.0, roughnessFactor=SKIN_ROUGHNESS),
        )

    def render_ids(self, vertices: np.ndarray, view: View, hair=None) -> np.ndarray:
        """Triangle index per pixel (int64 H, W), -1 for background. Exact: flat colours, no multisampling.
        Hair triangles (both sides) occlude the face; their pixels hold len(self.faces) or more."""
        pyrender = self._pyrender
        self._stage(view)
        # Back-facing triangles can never be seen (closed surfaces): leaving them out halves the upload.
        eye = self.camera_pose(view)[:3, 3]
        corners = vertices[self.faces]
        facing = np.einsum("ij,ij->i", np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), eye - corners[:, 0])
        front = facing > 0
        positions = corners[front].reshape(-1, 3)
        colors = self._id_colors.reshape(-1, 3, 4)[front].reshape(-1, 4)  # colours keep the original indices
        primitive = pyrender.Primitive(positions=positions, color_0=colors, material=self._id_material)
        self._show("ids", pyrender.Mesh([primitive]))
        self._show_cached("hair_ids", hair, self._hair_id_mesh)
        self._offscreen._renderer.samples = 0
        color, _ = self._offscreen.render(self._scene, flags=pyrender.RenderFlags.FLAT)
        color = color.astype(np.int64)
        return color[..., 0] + (color[..., 1] << 8) + (color[..., 2] << 16) - 1

    def project(self, points: np.ndarray, view: View) -> np.ndarray:
        """Pixel coordinates (N, 2) and clip w (N,) of world points; x right, y down, pixel centres at .5."""
        view_matrix = np.linalg.inv(self.camera_pose(view))
        homogeneous = np.c_[points, np.ones(len(points))] @ (self.projection @ view_matrix).T
        w = homogeneous[:, 3]
        ndc = homogeneous[:, :2] / w[:, None]
        pixels = np.stack([(ndc[:, 0] + 1) / 2 * self.image_size, (1 - ndc[:, 1]) / 2 * self.image_size], axis=1)
        return pixels, w

    def barycentrics(self, triangle_ids: np.ndarray, vertices: np.ndarray, view: View):
        """Perspective-correct barycentrics at the centre of every foreground pixel: `rows`, `cols` (N,), the
        triangle of each (N,) as an index into `self.faces`, and the weights of its three corners (N, 3). Hair
        pixels (ids from len(self.faces)) are left out."""
        rows, cols = np.nonzero((triangle_ids >= 0) & (triangle_ids < len(self.faces)))
        triangles = triangle_ids[rows, cols]
        return rows, cols, triangles, self._pixel_barycentrics(rows, cols, self.faces[triangles], vertices, view)

    def _pixel_barycentrics(self, rows, cols, tri: np.ndarray, vertices: np.ndarray, view: View) -> np.ndarray:
        """Perspective-correct weights (N, 3) of triangles `tri` (N, 3 vertex indices) at pixel centres (rows, cols)."""
        if len(rows) == 0:
            return np.zeros((0, 3))
        pixels, w = self.project(vertices, view)
        a, b, c = (pixels[tri[:, k]] for k in range(3))
        bary = barycentric_2d(np.stack([cols + 0.5, rows + 0.5], axis=1), a, b, c)
        bary /= w[tri]  # screen-space -> perspective-correct weights
        bary /= bary.sum(axis=1, keepdims=True)
        return bary

    def interpolate(self, triangle_ids: np.ndarray, vertices: np.ndarray, values: np.ndarray, view: View):
        """Per-vertex `values` (V,) interpolated at every pixel centre with perspective-correct barycentrics;
        0 on background and hair. float32 (H, W)."""
        out = np.zeros(triangle_ids.shape, dtype=np.float32)
        rows, cols, triangles, bary = self.barycentrics(triangle_ids, vertices, view)
        if len(rows):
            out[rows, cols] = (bary * values[self.faces[triangles]]).sum(axis=1)
        return out

    def ground_truth(self, triangle_ids: np.ndarray, vertices: np.ndarray, view: View, hair=None,
                     hair_classes: np.ndarray | None = None, every_pixel: bool = True) -> dict:
        """What the id pass tells beyond the mask, in the OpenCV camera frame (mm): `depth` camera z float32 (H, W),
        `normals` float32 unit (H, W, 3) (the shading normals, the flat triangle's where those turn away from the
        camera; hair's both sides face it), `segmentation` uint8 (H, W) class ids (face triangles by the face model's
        segments, hair triangles by `hair_classes` (F,), else all "hair"), 0 everywhere on the background, and
        `landmarks_3d` (68, 3) with `landmarks_visible` (68,): not self-occluded nor covered by hair (the depth test of
        `VISIBILITY_TOLERANCE_MM`). Without `every_pixel` the passes are filled only around the landmarks (all the
        visibility test needs; about ten times faster at 256 px)."""
        extrinsics = self.extrinsics(view)
        rotation, translation = extrinsics[:3, :3], extrinsics[:3, 3]
        shape = triangle_ids.shape
        landmarks = self.face_model.landmarks
        pixels, _ = self.project(vertices[landmarks], view)
        col, row = np.floor(pixels[:, 0]).astype(np.int64), np.floor(pixels[:, 1]).astype(np.int64)
        inside = (col >= 0) & (col < shape[1]) & (row >= 0) & (row < shape[0])
        col, row = np.clip(col, 0, shape[1] - 1), np.clip(row, 0, shape[0] - 1)
        around = [(np.clip(row + dr, 0, shape[0] - 1), np.clip(col + dc, 0, shape[1] - 1))
                  for dr in (-1, 0, 1) for dc in (-1, 0, 1)]  # each landmark's 3x3 pixel neighbourhood
        needed = np.ones(shape, bool)
        if not every_pixel:
            needed[:] = False
            for r, c in around:
                needed[r, c] = True
        depth = np.zeros(shape, np.float32)
        normals = np.zeros(shape + (3,), np.float32)
        segmentation = np.zeros(shape, np.uint8)
        surfaces = [((triangle_ids >= 0) & (triangle_ids < len(self.faces)), 0, vertices, self.faces,
                     self._normals(vertices), self.triangle_classes)]
        if hair is not None:
            classes = np.full(len(hair.faces), CLASS_ID["hair"], np.uint8) if hair_classes is None else hair_classes
            surfaces.append((triangle_ids >= len(self.faces), len(self.faces), np.asarray(hair.vertices, np.float32),
                             hair.faces, self._hair_normals(hair), classes))
        for where, first, points, faces, vertex_normals_, classes in surfaces:
            rows, cols = np.nonzero(where & needed)
            if len(rows) == 0:
                continue
            triangles = triangle_ids[rows, cols] - first
            tri = faces[triangles]
            bary = self._pixel_barycentrics(rows, cols, tri, points, view)
            camera = (bary[..., None] * points[tri]).sum(axis=1) @ rotation.T + translation
            corners = points[tri] @ rotation.T
            flat = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
            flat *= np.sign(np.einsum("ij,ij->i", flat, -camera))[:, None]  # the side the camera sees
            smooth = (bary[..., None] * vertex_normals_[tri]).sum(axis=1) @ rotation.T
            if first:  # hair is two-sided: the seen side's normal
                smooth *= np.sign(np.einsum("ij,ij->i", smooth, -camera))[:, None]
            away = np.einsum("ij,ij->i", smooth, -camera) <= 0
            smooth[away] = flat[away]
            depth[rows, cols] = camera[:, 2]
            normals[rows, cols] = smooth / np.maximum(np.linalg.norm(smooth, axis=1, keepdims=True), 1e-12)
            segmentation[rows, cols] = classes[triangles]
        landmarks_3d = vertices[landmarks].astype(np.float64) @ rotation.T + translation
        face = (triangle_ids >= 0) & (triangle_ids < len(self.faces))
        farthest = np.full(len(landmarks), -np.inf)
        for r, c in around:  # the farthest face surface around each landmark's pixel
            farthest = np.maximum(farthest, np.where(face[r, c], depth[r, c], -np.inf))
        visible = inside & face[row, col] & (landmarks_3d[:, 2] <= farthest + VISIBILITY_TOLERANCE_MM)
        return {"depth": depth, "normals": normals, "segmentation": segmentation,
                "landmarks_3d": landmarks_3d.astype(np.float32), "landmarks_visible": visible}

    def _hair_normals(self, hair) -> np.ndarray:
        """Vertex normals of a hair mesh, remembered for the hair shown last."""
        if getattr(self, "_hair_normal_source", None) is not hair:
            self._hair_normal_source = hair
            self._hair_vertex_normals = vertex_normals(np.asarray(hair.vertices, np.float32), hair.faces)
        return self._hair_vertex_normals

    # ----------------------------------------------------------------------------------------------- all at once
    def render(
        self,
        vertices: np.ndarray,
        view: View,
        displacement: np.ndarray | None = None,
        lighting: Lighting | None = None,
        texture=None,
        background: np.ndarray | tuple[int, int, int] = (128, 128, 128),
        rgb: bool = True,
        hair=None,
        ground_truth: bool = False,
        hair_classes: np.ndarray | None = None,
        passes: tuple[str, ...] = (),
    ) -> Render:
        """Render one view over `background` (an RGB colour or a uint8 (H, W, 3) image). `displacement` (V,) in
        mm, when given, becomes the heatmap: the motion of the visible skin, zero where `hair` covers it.
        `ground_truth` adds the camera, 3D landmarks with visibility and the depth, normals and segmentation
        passes (`ground_truth`; `hair_classes` are the segmentation classes of the hair's triangles); the passes
        (`depth`, `normals`, `segmentation`) cover every pixel only when `passes` names any (else they are None)."""
        vertices = np.asarray(vertices, dtype=np.float32)
        image, depth, coverage = None, None, None
        if rgb:
            rgba, depth = self.render_rgb(vertices, view, lighting, texture, hair)
            image, coverage = composite(rgba, background, feather=not self.msaa), rgba[..., 3] > 0
        heatmap, truth = None, {}
        if displacement is not None or coverage is None or ground_truth:  # the id pass: heatmaps and ground truth
            ids = self.render_ids(vertices, view, hair)
            if displacement is not None or coverage is None:
                coverage = ids >= 0
            if displacement is not None:
                heatmap = self.interpolate(ids, vertices, displacement, view)
            if ground_truth:
                truth = self.ground_truth(ids, vertices, view, hair, hair_classes, every_pixel=bool(passes))
                truth.update(intrinsics=self.intrinsics, extrinsics=self.extrinsics(view))
                pass_depth = truth.pop("depth")
                if passes:
                    depth = pass_depth
                else:  # filled only around the landmarks: not images
                    truth.update(normals=None, segmentation=None)
        landmarks, _ = self.project(vertices[self.face_model.landmarks], view)
        return Render(image=image, mask=coverage, landmarks_2d=landmarks.astype(np.float32), heatmap=heatmap,
                      depth=depth, **truth)

    def close(self) -> None:
        """Free this renderer's OpenGL context (other renderers in the process keep working)."""
        offscreen, self._offscreen = self._offscreen, None
        if offscreen is None:
            return
        platform = offscreen._platform
        platform.make_current()
        offscreen._renderer.delete()
        if hasattr(platform, "_egl_display"):
            # pyrender's own delete calls eglTerminate, which kills every other context on the shared display.
            from OpenGL.EGL import EGL_NO_CONTEXT, EGL_NO_SURFACE, eglDestroyContext, eglMakeCurrent

            eglMakeCurrent(platform._egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT)
            eglDestroyContext(platform._egl_display, platform._egl_context)
        else:
            platform.delete_context()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def composite(rgba: np.ndarray, background, feather: bool = False) -> np.ndarray:
    """Premultiplied RGBA render over a background colour or image; uint8 (H, W, 3).

    `feather` anti-aliases the silhouette of a render made without multisampling (binary alpha): the coverage is
    softened with a 3x3 box filter and pixels just outside take the mean colour of their covered neighbours. It
    costs a few milliseconds where 4x multisampling costs about three times the whole render in software GL.
    """
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    background = np.broadcast_to(np.asarray(background, dtype=np.float32), rgb.shape)
    if feather:
        from scipy.ndimage import uniform_filter

        covered = (alpha > 0).astype(np.float32)
        soft = uniform_filter(covered[..., 0], size=3, mode="nearest")[..., None]
        neighbours = uniform_filter(rgb * covered, size=(3, 3, 1), mode="nearest") / np.maximum(soft, 1e-6)
        color = np.where(covered > 0, rgb / np.maximum(alpha, 1e-6), neighbours)
        return np.clip(color * soft + (1.0 - soft) * background + 0.5, 0, 255).astype(np.uint8)
    return np.clip(rgb + (1.0 - alpha) * background + 0.5, 0, 255).astype(np.uint8)


def displacement_mm(posed: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-vertex Euclidean distance (V,) in mm between two posings of the same identity (the heatmap's values)."""
    return np.linalg.norm(np.asarray(posed, np.float64) - np.asarray(reference, np.float64), axis=1).astype(np.float32)


__all__ = ["DEFAULT_VIEWS", "FaceRenderer", "Lighting", "Render", "View", "displacement_mm"]
