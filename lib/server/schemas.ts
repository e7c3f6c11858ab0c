// JSON schemas of the request bodies (validated by fastify's ajv before a
// handler runs). Unknown fields are refused, so a typo is not silently
// ignored: through propertyNames rather than additionalProperties: false,
// which fastify's default ajv (removeAdditional) would strip silently.

/** Only these keys. */
const only = (properties: object) => ({ properties, propertyNames: { enum: Object.keys(properties) } });
const sampling = {
  cfg: { type: 'number', minimum: 0, maximum: 100 },
  top_k: { type: 'integer', minimum: 0, maximum: 2147483647 },  // the sampler's int32
  top_p: { type: 'number', minimum: 0, maximum: 1 },
  temperature: { type: 'number', exclusiveMinimum: 0, maximum: 100 },
  seed: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
  more_smooth: { type: 'boolean' },
  preview: { type: 'boolean' },
  model: { type: 'string', minLength: 1, maxLength: 200 },
  class: { type: 'integer', minimum: -1 },
} as const;

export function generateSchema(maxCount: number) {
  return {
    type: 'object',
    ...only({
      ...sampling,
      count: { type: 'integer', minimum: 1, maximum: maxCount },
      decode: { type: 'string', enum: ['ar', 'sjd'] },
      window: { type: 'integer', minimum: 1, maximum: 4095 },
    }),
  } as const;
}

export function editSchema(maxCount: number) {
  return {
    type: 'object', required: ['image', 'box'],
    ...only({
      ...sampling,
      count: { type: 'integer', minimum: 1, maximum: maxCount },
      /** Base64 PNG/JPEG/WebP, RGB, at the model's side. */
      image: { type: 'string', minLength: 1 },
      box: { type: 'array', items: { type: 'number' }, minItems: 4, maxItems: 4 },
      mode: { type: 'string', enum: ['inpaint', 'outpaint'] },
    }),
  } as const;
}

const vec3 = { type: 'array', items: { type: 'number' }, minItems: 3, maxItems: 3 } as const;
const side = { type: 'integer', minimum: 1, maximum: 4096 } as const;

export const renderSchema = {
  type: 'object', required: ['scene', 'camera'],
  ...only({
    scene: { type: 'string', minLength: 1, maxLength: 200 },
    camera: {
      oneOf: [
        {
          type: 'object', required: ['eye', 'target', 'width', 'height'],
          ...only({ eye: vec3, target: vec3, up: vec3, fov_y_degrees: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 180 }, width: side, height: side }),
        },
        {
          type: 'object', required: ['fx', 'fy', 'cx', 'cy', 'width', 'height', 'world_to_camera'],
          ...only({
            fx: { type: 'number', exclusiveMinimum: 0 }, fy: { type: 'number', exclusiveMinimum: 0 }, cx: { type: 'number' }, cy: { type: 'number' },
            width: side, height: side, world_to_camera: { type: 'array', items: { type: 'number' }, minItems: 16, maxItems: 16 },
          }),
        },
      ],
    },
    background: vec3,
    mode: { type: 'string', enum: ['classic', 'antialiased'] },
    sh_degree: { type: 'integer', minimum: 0, maximum: 3 },
  }),
} as const;
